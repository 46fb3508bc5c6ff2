//! One segment's encoders and muxers: H.264 screen into one Matroska file (on its own thread,
//! see `screen_thread`), the two voice tracks as Opus into another, both in memory.

use ffmpeg_next as ffmpeg;

use crate::container::{memory_output, MemoryFile};
use crate::encoder_config::EncoderConfig;
use crate::screen_thread::{EndingScreen, ScreenThread};
use crate::{MediaError, MediaErrorKind, VOICE_RATE};
use vigil_capture::VideoFrame;

const MS: u64 = 1_000_000;

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
                .map_err(MediaError::encode)?;
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
            let encoder = enc.open_with(options).map_err(MediaError::encode)?;
            let frame_size = encoder.frame_size().max(1) as usize;
            let mut stream = output.add_stream(codec).map_err(MediaError::mux)?;
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
        output.write_header().map_err(MediaError::mux)?;
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
            t.encoder.send_frame(&frame).map_err(MediaError::encode)?;
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
            packet.write_interleaved(output).map_err(MediaError::mux)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<u8>, MediaError> {
        for i in 0..self.tracks.len() {
            self.push(i, &[], true)?;
            let t = &mut self.tracks[i];
            t.encoder.send_eof().map_err(MediaError::encode)?;
            Self::drain(&mut t.encoder, i, &mut self.output)?;
        }
        self.output.write_trailer().map_err(MediaError::mux)?;
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
        ffmpeg::init().map_err(MediaError::encode)?;
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
    use crate::encoder_config::CropRect;
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
