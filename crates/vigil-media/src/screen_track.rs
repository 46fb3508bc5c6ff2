//! The screen track of one segment: frames cropped, scaled and converted, encoded as H.264 and
//! muxed into a Matroska file in memory.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::container::{memory_output, MemoryFile};
use crate::encoder_config::{CropRect, EncoderConfig};
use crate::{MediaError, MediaErrorKind};
use vigil_capture::VideoFrame;
use vigil_proto::TrackInfo;

/// The H.264 encoder of the screen track (the manifest's `video_codec`).
pub(crate) const SCREEN_ENCODER: &str = "libx264";

/// The screen track as the manifest describes it.
pub(crate) fn screen_track_info() -> TrackInfo {
    TrackInfo {
        role: "screen".into(),
        codec: "h264".into(),
        source: "display".into(),
    }
}

/// The encoded screen track: the muxed file, frames encoded and the encoded size.
pub(crate) type ScreenOutput = (Vec<u8>, u64, (u32, u32));

/// Vigil's x264 options for screen content: one keyframe, at the segment's start; no B-frames
/// (monotonic DTS per segment); keyframes at the QP of the P-frames around them (a screen's
/// keyframe is mostly the same static text the P-frames refer to: the default 1.4 ratio makes
/// every segment's keyframe far larger for no visible gain); no psychovisual optimisations
/// (they spend bits on film grain and texture, which screens do not have).
const X264_PARAMS: &str = "keyint=infinite:scenecut=0:bframes=0:ipratio=1.0:psy=0";

/// The picture size under a height cap (0: no cap), aspect ratio kept.
pub(crate) fn capped(width: u32, height: u32, max_height: u32) -> (u32, u32) {
    if max_height == 0 || height <= max_height {
        return (width, height);
    }
    let scaled = (u64::from(width) * u64::from(max_height) / u64::from(height)) as u32;
    (scaled.max(2), max_height)
}

/// A segment's screen encoder and muxer.
pub(crate) struct ScreenTrack {
    encoder: ffmpeg::encoder::Video,
    output: ffmpeg::format::context::Output,
    file: MemoryFile,
    width: u32,
    height: u32,
    scaler: Option<((u32, u32), scaling::Context)>,
    crop: Option<CropRect>,
    yuv: ffmpeg::frame::Video,
    last_pts: Option<i64>,
    /// Packets are written one behind, so that each gets its duration (next pts − pts).
    held: Option<ffmpeg::Packet>,
    frames: u64,
}

impl ScreenTrack {
    pub(crate) fn new(config: &EncoderConfig, width: u32, height: u32) -> Result<Self, MediaError> {
        let region = CropRect::within(config.crop, width, height);
        let (width, height) = capped(region.width, region.height, config.max_height);
        // H.264 4:2:0 needs even dimensions.
        let (width, height) = (width & !1, height & !1);
        let codec = ffmpeg::encoder::find_by_name(SCREEN_ENCODER).ok_or_else(|| {
            MediaError::new(
                MediaErrorKind::CodecMissing,
                format!("{SCREEN_ENCODER} encoder not found"),
            )
        })?;
        let file = MemoryFile::default();
        let mut output = memory_output(&file)?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(MediaError::encode)?;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base((1, 1000));
        enc.set_frame_rate(Some((config.max_fps as i32, 1)));
        enc.set_max_b_frames(0);
        if output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER)
        {
            enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
        }
        let mut options = ffmpeg::Dictionary::new();
        options.set("preset", &config.preset);
        options.set("crf", &config.crf.to_string());
        options.set("threads", &config.threads.to_string());
        // One keyframe, at the segment's start; no B-frames (monotonic DTS per segment).
        let params = match config.x264_params.trim() {
            "" => X264_PARAMS.to_string(),
            extra => format!("{X264_PARAMS}:{extra}"),
        };
        options.set("x264-params", &params);
        let encoder = enc.open_with(options).map_err(MediaError::encode)?;
        {
            let mut stream = output.add_stream(codec).map_err(MediaError::mux)?;
            stream.set_parameters(&encoder);
            stream.set_time_base((1, 1000));
            let mut meta = ffmpeg::Dictionary::new();
            meta.set("title", &screen_track_info().role);
            stream.set_metadata(meta);
        }
        output.write_header().map_err(MediaError::mux)?;
        Ok(Self {
            encoder,
            output,
            file,
            width,
            height,
            scaler: None,
            crop: config.crop,
            yuv: ffmpeg::frame::Video::new(Pixel::YUV420P, width, height),
            last_pts: None,
            held: None,
            frames: 0,
        })
    }

    pub(crate) fn push(&mut self, frame: &VideoFrame, pts_ms: i64) -> Result<(), MediaError> {
        let pts_ms = match self.last_pts {
            Some(last) if pts_ms <= last => last + 1,
            _ => pts_ms,
        };
        self.last_pts = Some(pts_ms);
        let region = CropRect::within(self.crop, frame.width, frame.height);
        let mut bgr = ffmpeg::frame::Video::new(Pixel::BGRZ, region.width, region.height);
        let dst_stride = bgr.stride(0);
        let row = region.width as usize * 4;
        let left = region.x as usize * 4;
        let dst = bgr.data_mut(0);
        for y in 0..region.height as usize {
            let src = (region.y as usize + y) * frame.stride + left;
            dst[y * dst_stride..y * dst_stride + row].copy_from_slice(&frame.data[src..src + row]);
        }
        let key = (region.width, region.height);
        if self.scaler.as_ref().map(|(k, _)| *k) != Some(key) {
            // A frame of another size (resolution changed mid-segment) is scaled to the
            // segment's size; the next segment takes the new size.
            let ctx = scaling::Context::get(
                Pixel::BGRZ,
                region.width,
                region.height,
                Pixel::YUV420P,
                self.width,
                self.height,
                scaling::Flags::FAST_BILINEAR,
            )
            .map_err(MediaError::encode)?;
            self.scaler = Some((key, ctx));
        }
        let (_, scaler) = self.scaler.as_mut().expect("scaler set above");
        scaler
            .run(&bgr, &mut self.yuv)
            .map_err(MediaError::encode)?;
        self.yuv.set_pts(Some(pts_ms));
        self.encoder
            .send_frame(&self.yuv)
            .map_err(MediaError::encode)?;
        self.frames += 1;
        self.drain(None)
    }

    fn drain(&mut self, end_ms: Option<i64>) -> Result<(), MediaError> {
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            let next = std::mem::replace(&mut packet, ffmpeg::Packet::empty());
            if let Some(mut held) = self.held.take() {
                held.set_duration(next.pts().unwrap_or(0) - held.pts().unwrap_or(0));
                self.write(held)?;
            }
            self.held = Some(next);
        }
        // Only at the end: the last packet's duration runs to the segment's end. (Taking the held
        // packet in any other case would drop it.)
        if let Some(end) = end_ms {
            if let Some(mut held) = self.held.take() {
                held.set_duration((end - held.pts().unwrap_or(0)).max(1));
                self.write(held)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, mut packet: ffmpeg::Packet) -> Result<(), MediaError> {
        let tb = self
            .output
            .stream(0)
            .map(|s| s.time_base())
            .unwrap_or((1, 1000).into());
        packet.set_stream(0);
        packet.rescale_ts((1, 1000), tb);
        packet
            .write_interleaved(&mut self.output)
            .map_err(MediaError::mux)
    }

    /// Flushes the encoder; returns the muxed file, the frames encoded and the encoded size.
    pub(crate) fn finish(mut self, end_ms: i64) -> Result<ScreenOutput, MediaError> {
        self.encoder.send_eof().map_err(MediaError::encode)?;
        self.drain(Some(end_ms))?;
        self.output.write_trailer().map_err(MediaError::mux)?;
        drop(self.output);
        Ok((self.file.take(), self.frames, (self.width, self.height)))
    }
}

#[cfg(test)]
mod tests {
    use super::capped;

    #[test]
    fn a_height_cap_keeps_the_aspect_ratio_and_never_scales_up() {
        assert_eq!(capped(1920, 1080, 0), (1920, 1080));
        assert_eq!(capped(1920, 1080, 1080), (1920, 1080));
        assert_eq!(capped(1920, 1080, 720), (1280, 720));
        assert_eq!(capped(3840, 2160, 1080), (1920, 1080));
    }
}
