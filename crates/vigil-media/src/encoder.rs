//! One segment's encoders and muxers: H.264 screen into one Matroska file, the two voice
//! tracks as Opus into another, both in memory.

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::container::{memory_output, MemoryFile};
use crate::screen_thread::{EndingScreen, ScreenOutput, ScreenThread};
use crate::{MediaError, MediaErrorKind, VOICE_RATE};
use vigil_capture::VideoFrame;

/// Encoder settings (from policy, with defaults).
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// x264 preset.
    pub preset: String,
    /// x264 constant rate factor.
    pub crf: u32,
    /// Maximum frame rate of the screen.
    pub max_fps: u32,
    /// Opus bit rate per voice track.
    pub audio_bitrate: u32,
    /// x264 threads (0 = x264's choice).
    pub threads: u32,
    /// Extra x264 options (`key=value:key=value`), after Vigil's own.
    pub x264_params: String,
    /// Largest encoded picture height (0: the desktop's); taller desktops are scaled down,
    /// keeping their aspect ratio.
    pub max_height: u32,
    /// Record only this part of the desktop (the primary monitor, by policy); frames it does
    /// not fit (the desktop changed) are recorded whole.
    pub crop: Option<CropRect>,
}

/// A rectangle of the desktop, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl CropRect {
    /// The part of a `width` × `height` frame to encode: this rectangle when it fits, else all.
    fn within(crop: Option<CropRect>, width: u32, height: u32) -> CropRect {
        match crop {
            Some(c)
                if c.width >= 2
                    && c.height >= 2
                    && c.x.saturating_add(c.width) <= width
                    && c.y.saturating_add(c.height) <= height =>
            {
                c
            }
            _ => CropRect {
                x: 0,
                y: 0,
                width,
                height,
            },
        }
    }
}

/// Vigil's x264 options for screen content: one keyframe, at the segment's start; no B-frames
/// (monotonic DTS per segment); keyframes at the QP of the P-frames around them (a screen's
/// keyframe is mostly the same static text the P-frames refer to: the default 1.4 ratio makes
/// every segment's keyframe far larger for no visible gain); no psychovisual optimisations
/// (they spend bits on film grain and texture, which screens do not have).
const X264_PARAMS: &str = "keyint=infinite:scenecut=0:bframes=0:ipratio=1.0:psy=0";

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            preset: "veryfast".into(),
            crf: 32,
            max_fps: 5,
            audio_bitrate: 16_000,
            threads: 1,
            x264_params: String::new(),
            max_height: 0,
            crop: None,
        }
    }
}

/// The picture size under a height cap (0: no cap), aspect ratio kept.
fn capped(width: u32, height: u32, max_height: u32) -> (u32, u32) {
    if max_height == 0 || height <= max_height {
        return (width, height);
    }
    let scaled = (u64::from(width) * u64::from(max_height) / u64::from(height)) as u32;
    (scaled.max(2), max_height)
}

fn enc_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::new(MediaErrorKind::Encode, e)
}
fn mux_err(e: impl std::fmt::Display) -> MediaError {
    MediaError::new(MediaErrorKind::Mux, e)
}

const MS: u64 = 1_000_000;

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
        let codec = ffmpeg::encoder::find_by_name("libx264").ok_or_else(|| {
            MediaError::new(MediaErrorKind::CodecMissing, "libx264 encoder not found")
        })?;
        let file = MemoryFile::default();
        let mut output = memory_output(&file)?;
        let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(enc_err)?;
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
        let encoder = enc.open_with(options).map_err(enc_err)?;
        {
            let mut stream = output.add_stream(codec).map_err(mux_err)?;
            stream.set_parameters(&encoder);
            stream.set_time_base((1, 1000));
            let mut meta = ffmpeg::Dictionary::new();
            meta.set("title", "screen");
            stream.set_metadata(meta);
        }
        output.write_header().map_err(mux_err)?;
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
            .map_err(enc_err)?;
            self.scaler = Some((key, ctx));
        }
        let (_, scaler) = self.scaler.as_mut().expect("scaler set above");
        scaler.run(&bgr, &mut self.yuv).map_err(enc_err)?;
        self.yuv.set_pts(Some(pts_ms));
        self.encoder.send_frame(&self.yuv).map_err(enc_err)?;
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
        packet.write_interleaved(&mut self.output).map_err(mux_err)
    }

    /// Flushes the encoder; returns the muxed file, the frames encoded and the encoded size.
    pub(crate) fn finish(mut self, end_ms: i64) -> Result<ScreenOutput, MediaError> {
        self.encoder.send_eof().map_err(enc_err)?;
        self.drain(Some(end_ms))?;
        self.output.write_trailer().map_err(mux_err)?;
        drop(self.output);
        Ok((self.file.take(), self.frames, (self.width, self.height)))
    }
}

struct VoiceEncoder {
    encoder: ffmpeg::encoder::Audio,
    buffer: Vec<f32>,
    next_pts: i64,
    frame_size: usize,
}

struct VoiceTracks {
    tracks: Vec<VoiceEncoder>,
    output: ffmpeg::format::context::Output,
    file: MemoryFile,
}

impl VoiceTracks {
    fn new(config: &EncoderConfig, titles: &[&str]) -> Result<Self, MediaError> {
        let codec = ffmpeg::encoder::find_by_name("libopus").ok_or_else(|| {
            MediaError::new(MediaErrorKind::CodecMissing, "libopus encoder not found")
        })?;
        let file = MemoryFile::default();
        let mut output = memory_output(&file)?;
        let global = output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let mut tracks = Vec::new();
        for title in titles {
            let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
                .encoder()
                .audio()
                .map_err(enc_err)?;
            enc.set_rate(VOICE_RATE as i32);
            enc.set_format(ffmpeg::format::Sample::F32(
                ffmpeg::format::sample::Type::Packed,
            ));
            enc.set_channel_layout(ffmpeg::ChannelLayout::MONO);
            enc.set_bit_rate(config.audio_bitrate as usize);
            enc.set_time_base((1, VOICE_RATE as i32));
            if global {
                enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
            }
            let mut options = ffmpeg::Dictionary::new();
            options.set("application", "voip");
            // Complexity 5 of 10: speech at 16 kb/s stays clear at about half the CPU.
            options.set("compression_level", "5");
            let encoder = enc.open_with(options).map_err(enc_err)?;
            let frame_size = encoder.frame_size().max(1) as usize;
            let mut stream = output.add_stream(codec).map_err(mux_err)?;
            stream.set_parameters(&encoder);
            stream.set_time_base((1, VOICE_RATE as i32));
            let mut meta = ffmpeg::Dictionary::new();
            meta.set("title", title);
            stream.set_metadata(meta);
            tracks.push(VoiceEncoder {
                encoder,
                buffer: Vec::new(),
                next_pts: 0,
                frame_size,
            });
        }
        output.write_header().map_err(mux_err)?;
        Ok(Self {
            tracks,
            output,
            file,
        })
    }

    fn push(&mut self, track: usize, samples: &[f32], last: bool) -> Result<(), MediaError> {
        let t = &mut self.tracks[track];
        t.buffer.extend_from_slice(samples);
        let mut offset = 0;
        while t.buffer.len() - offset >= t.frame_size || (last && offset < t.buffer.len()) {
            let n = t.frame_size.min(t.buffer.len() - offset);
            let mut frame = ffmpeg::frame::Audio::new(
                ffmpeg::format::Sample::F32(ffmpeg::format::sample::Type::Packed),
                n,
                ffmpeg::ChannelLayout::MONO,
            );
            frame.set_rate(VOICE_RATE);
            frame.plane_mut::<f32>(0)[..n].copy_from_slice(&t.buffer[offset..offset + n]);
            frame.set_pts(Some(t.next_pts));
            t.next_pts += n as i64;
            offset += n;
            t.encoder.send_frame(&frame).map_err(enc_err)?;
            Self::drain(&mut t.encoder, track, &mut self.output)?;
        }
        t.buffer.drain(..offset);
        Ok(())
    }

    fn drain(
        encoder: &mut ffmpeg::encoder::Audio,
        index: usize,
        output: &mut ffmpeg::format::context::Output,
    ) -> Result<(), MediaError> {
        let tb = output
            .stream(index)
            .map(|s| s.time_base())
            .unwrap_or((1, VOICE_RATE as i32).into());
        let mut packet = ffmpeg::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(index);
            packet.rescale_ts((1, VOICE_RATE as i32), tb);
            packet.write_interleaved(output).map_err(mux_err)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, MediaError> {
        for i in 0..self.tracks.len() {
            self.push(i, &[], true)?;
            let t = &mut self.tracks[i];
            t.encoder.send_eof().map_err(enc_err)?;
            Self::drain(&mut t.encoder, i, &mut self.output)?;
        }
        self.output.write_trailer().map_err(mux_err)?;
        drop(self.output);
        Ok(self.file.take())
    }
}

/// A segment's media, encoded and muxed, still in memory (plaintext: seal it next).
pub struct EncodedSegment {
    /// The screen as H.264 in Matroska, if any frame was captured.
    pub screen: Option<Vec<u8>>,
    /// Frames encoded.
    pub video_frames: u64,
    /// Encoded size of the screen.
    pub video_size: (u32, u32),
    /// Microphone and system audio as two Opus tracks in Matroska.
    pub voice: Vec<u8>,
}

/// The encoders of one segment: voice here, the screen on its own thread.
pub(crate) struct SegmentEncoder {
    config: EncoderConfig,
    start_ns: u64,
    screen: Option<ScreenThread>,
    voice: VoiceTracks,
}

impl SegmentEncoder {
    pub(crate) fn new(config: EncoderConfig, start_ns: u64) -> Result<Self, MediaError> {
        ffmpeg::init().map_err(enc_err)?;
        // Encoder statistics on stderr are noise in an agent's log.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        let voice = VoiceTracks::new(&config, &["microphone", "system_audio"])?;
        Ok(Self {
            config,
            start_ns,
            screen: None,
            voice,
        })
    }

    /// Queues a frame for the screen track (its thread starts with the first).
    pub(crate) fn push_video(&mut self, frame: VideoFrame) -> Result<(), MediaError> {
        let screen = match self.screen.take() {
            Some(running) => running,
            None => ScreenThread::start(self.config.clone())?,
        };
        let pts_ms = (frame.pts_ns.saturating_sub(self.start_ns) / MS) as i64;
        self.screen = Some(screen.push(frame, pts_ms)?);
        Ok(())
    }

    /// Appends samples to voice track 0 (microphone) or 1 (system audio).
    pub(crate) fn push_audio(&mut self, track: usize, samples: &[f32]) -> Result<(), MediaError> {
        self.voice.push(track, samples, false)
    }

    /// Ends the segment at `end_ns`: the voice is finished now, the screen on its thread.
    pub(crate) fn finish(self, end_ns: u64) -> Result<PendingMedia, MediaError> {
        let end_ms = (end_ns.saturating_sub(self.start_ns) / MS) as i64;
        let screen = self.screen.map(|s| s.end(end_ms));
        Ok(PendingMedia {
            screen,
            voice: self.voice.finish()?,
        })
    }
}

/// A segment's media whose screen track may still be flushing.
pub(crate) struct PendingMedia {
    screen: Option<EndingScreen>,
    voice: Vec<u8>,
}

impl PendingMedia {
    /// Whether [`PendingMedia::wait`] will not block.
    pub(crate) fn is_ready(&self) -> bool {
        self.screen.as_ref().is_none_or(EndingScreen::is_ready)
    }

    /// The segment's media, once the screen track is flushed.
    pub(crate) fn wait(self) -> Result<EncodedSegment, MediaError> {
        let screen = match self.screen {
            Some(ending) => ending.wait()?,
            None => None,
        };
        let (screen, video_frames, video_size) = match screen {
            Some((bytes, frames, size)) => (Some(bytes), frames, size),
            None => (None, 0, (0, 0)),
        };
        Ok(EncodedSegment {
            screen,
            video_frames,
            video_size,
            voice: self.voice,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigil_capture::PixelFormat;

    fn frame(pts_ns: u64, shade: u8) -> VideoFrame {
        let (width, height) = (1920u32, 1080u32);
        VideoFrame {
            pts_ns,
            width,
            height,
            stride: width as usize * 4,
            format: PixelFormat::Bgr0,
            data: Arc::new(vec![shade; (width * height * 4) as usize]),
            origin: (0, 0),
        }
    }

    /// The encoded size of one 1920x1080 frame under `config`.
    fn size_of_one_frame(config: EncoderConfig) -> (u32, u32) {
        let mut enc = SegmentEncoder::new(config, 0).unwrap();
        enc.push_video(frame(0, 10)).unwrap();
        enc.finish(1_000_000_000)
            .unwrap()
            .wait()
            .unwrap()
            .video_size
    }

    #[test]
    fn a_height_cap_scales_the_picture_down_keeping_its_aspect() {
        assert_eq!(capped(1920, 1080, 0), (1920, 1080));
        assert_eq!(capped(1920, 1080, 1080), (1920, 1080));
        assert_eq!(capped(1920, 1080, 720), (1280, 720));
        assert_eq!(capped(3840, 2160, 1080), (1920, 1080));
        let config = EncoderConfig {
            max_height: 720,
            ..EncoderConfig::default()
        };
        let mut enc = SegmentEncoder::new(config, 0).unwrap();
        enc.push_video(frame(0, 10)).unwrap();
        let done = enc.finish(1_000_000_000).unwrap().wait().unwrap();
        assert_eq!(done.video_size, (1280, 720));
    }

    #[test]
    fn a_crop_records_only_its_rectangle_and_a_crop_that_does_not_fit_records_all() {
        let primary = CropRect {
            x: 640,
            y: 0,
            width: 1280,
            height: 720,
        };
        let config = EncoderConfig {
            crop: Some(primary),
            ..EncoderConfig::default()
        };
        assert_eq!(size_of_one_frame(config), (1280, 720));
        let too_big = EncoderConfig {
            crop: Some(CropRect { x: 1000, ..primary }),
            ..EncoderConfig::default()
        };
        assert_eq!(size_of_one_frame(too_big), (1920, 1080));
    }

    #[test]
    fn every_segment_starts_with_a_keyframe_at_zero_and_keeps_every_frame() {
        let mut enc = SegmentEncoder::new(EncoderConfig::default(), 1_000_000_000).unwrap();
        let times: Vec<u64> = (0..45).map(|i| 1_000_000_000 + i * 200_000_000).collect();
        for (i, t) in times.iter().enumerate() {
            enc.push_video(frame(*t, (i * 5) as u8)).unwrap();
        }
        let done = enc.finish(11_000_000_000).unwrap().wait().unwrap();
        let report = crate::probe(done.screen.unwrap()).unwrap();
        let video = &report.streams[0];
        assert_eq!(video.packets, times.len() as u64);
        assert_eq!(video.first_pts, 0.0);
    }
}
