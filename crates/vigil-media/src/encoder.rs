//! One segment's encoders and muxers: H.264 screen into one Matroska file (on its own thread,
//! see `screen_thread`), the two voice tracks as Opus into another, both in memory.

use ffmpeg_next as ffmpeg;

use crate::container::{memory_output, MemoryFile, CONTAINER};
use crate::encoder_config::EncoderConfig;
use crate::screen_thread::{EndingScreen, ScreenThread};
use crate::screen_track::{screen_track_info, SCREEN_ENCODER};
use crate::{MediaError, MediaErrorKind, VOICE_RATE};
use vigil_capture::VideoFrame;
use vigil_proto::{EncoderSettings, MediaKind, TrackInfo};

const MS: u64 = 1_000_000;

/// The Opus encoder of the voice tracks (the manifest's `audio_codec`).
const VOICE_ENCODER: &str = "libopus";
/// The voice tracks' titles, in container order: the roles the manifest names.
const VOICE_TITLES: [&str; 2] = ["microphone", "system_audio"];

/// The devices the voice tracks are captured from, as the manifest names them.
#[derive(Debug, Clone)]
pub struct VoiceSources {
    /// The microphone.
    pub microphone: String,
    /// The system audio output.
    pub system_audio: String,
}

impl VoiceSources {
    /// The voice tracks as the manifest describes them, in container order.
    fn tracks(&self) -> Vec<TrackInfo> {
        VOICE_TITLES
            .iter()
            .zip([&self.microphone, &self.system_audio])
            .map(|(title, source)| TrackInfo {
                role: (*title).into(),
                codec: "opus".into(),
                source: source.clone(),
            })
            .collect()
    }
}

/// The manifest's account of the encoders, with the segment's encoded picture size.
fn settings(config: &EncoderConfig, video_size: (u32, u32)) -> EncoderSettings {
    EncoderSettings {
        video_codec: SCREEN_ENCODER.into(),
        video_preset: config.preset.clone(),
        video_crf: config.crf,
        video_max_fps: config.max_fps,
        video_size,
        audio_codec: VOICE_ENCODER.into(),
        audio_bitrate: config.audio_bitrate,
        audio_sample_rate: VOICE_RATE,
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
        let codec = ffmpeg::encoder::find_by_name(VOICE_ENCODER).ok_or_else(|| {
            MediaError::new(
                MediaErrorKind::CodecMissing,
                format!("{VOICE_ENCODER} encoder not found"),
            )
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

/// One file of a segment, as the manifest describes it, with its content (plaintext: seal it
/// next).
pub struct EncodedBlob {
    /// What it holds.
    pub kind: MediaKind,
    /// Its container.
    pub container: String,
    /// Its tracks, in stream order.
    pub tracks: Vec<TrackInfo>,
    /// The muxed file, in memory.
    pub plaintext: Vec<u8>,
}

/// A segment's media, encoded and muxed, still in memory.
pub struct EncodedSegment {
    /// The screen as H.264 in Matroska (if any frame was captured), then the microphone and
    /// the system audio as two Opus tracks in Matroska.
    pub blobs: Vec<EncodedBlob>,
    /// Frames encoded.
    pub video_frames: u64,
    /// The encoders' settings, with the screen's encoded size ((0, 0) without a screen).
    pub encoder: EncoderSettings,
}

impl EncodedSegment {
    /// The file of a kind, if the segment has one.
    pub fn blob(&self, kind: MediaKind) -> Option<&EncodedBlob> {
        self.blobs.iter().find(|b| b.kind == kind)
    }
}

/// The encoders of one segment: voice here, the screen on its own thread.
pub(crate) struct SegmentEncoder {
    config: EncoderConfig,
    start_ns: u64,
    screen: Option<ScreenThread>,
    voice: VoiceTracks,
    voice_tracks: Vec<TrackInfo>,
}

impl SegmentEncoder {
    pub(crate) fn new(
        config: EncoderConfig,
        sources: &VoiceSources,
        start_ns: u64,
    ) -> Result<Self, MediaError> {
        ffmpeg::init().map_err(MediaError::encode)?;
        // Encoder statistics on stderr are noise in an agent's log.
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
        let voice = VoiceTracks::new(&config, &VOICE_TITLES)?;
        Ok(Self {
            config,
            start_ns,
            screen: None,
            voice,
            voice_tracks: sources.tracks(),
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
            voice: EncodedBlob {
                kind: MediaKind::Voice,
                container: CONTAINER.into(),
                tracks: self.voice_tracks,
                plaintext: self.voice.finish()?,
            },
            encoder: settings(&self.config, (0, 0)),
        })
    }
}

/// A segment's media whose screen track may still be flushing.
pub(crate) struct PendingMedia {
    screen: Option<EndingScreen>,
    voice: EncodedBlob,
    encoder: EncoderSettings,
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
        let mut encoder = self.encoder;
        let mut blobs = Vec::new();
        let mut video_frames = 0;
        if let Some((plaintext, frames, size)) = screen {
            blobs.push(EncodedBlob {
                kind: MediaKind::Screen,
                container: CONTAINER.into(),
                tracks: vec![screen_track_info()],
                plaintext,
            });
            video_frames = frames;
            encoder.video_size = size;
        }
        blobs.push(self.voice);
        Ok(EncodedSegment {
            blobs,
            video_frames,
            encoder,
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

    fn sources() -> VoiceSources {
        VoiceSources {
            microphone: "headset".into(),
            system_audio: "speakers".into(),
        }
    }

    /// The encoded size of one 1920x1080 frame under `config`.
    fn size_of_one_frame(config: EncoderConfig) -> (u32, u32) {
        let mut enc = SegmentEncoder::new(config, &sources(), 0).unwrap();
        enc.push_video(frame(0, 10)).unwrap();
        let done = enc.finish(1_000_000_000).unwrap().wait().unwrap();
        done.encoder.video_size
    }

    #[test]
    fn a_height_cap_scales_the_picture_down_keeping_its_aspect() {
        let config = EncoderConfig {
            max_height: 720,
            ..EncoderConfig::default()
        };
        let mut enc = SegmentEncoder::new(config, &sources(), 0).unwrap();
        enc.push_video(frame(0, 10)).unwrap();
        let done = enc.finish(1_000_000_000).unwrap().wait().unwrap();
        assert_eq!(done.encoder.video_size, (1280, 720));
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
        let mut enc =
            SegmentEncoder::new(EncoderConfig::default(), &sources(), 1_000_000_000).unwrap();
        let times: Vec<u64> = (0..45).map(|i| 1_000_000_000 + i * 200_000_000).collect();
        for (i, t) in times.iter().enumerate() {
            enc.push_video(frame(*t, (i * 5) as u8)).unwrap();
        }
        let done = enc.finish(11_000_000_000).unwrap().wait().unwrap();
        let screen = done.blob(MediaKind::Screen).unwrap().plaintext.clone();
        let report = crate::probe(screen).unwrap();
        let video = &report.streams[0];
        assert_eq!(video.packets, times.len() as u64);
        assert_eq!(video.first_pts, 0.0);
    }

    /// What the manifest says of a segment's files comes from the encoders that made them.
    #[test]
    fn each_file_comes_with_its_manifest_description() {
        let describe = |done: &EncodedSegment| -> Vec<(MediaKind, String, Vec<String>)> {
            let track = |t: &TrackInfo| format!("{} {} {}", t.role, t.codec, t.source);
            let blobs = done.blobs.iter();
            blobs
                .map(|b| {
                    (
                        b.kind,
                        b.container.clone(),
                        b.tracks.iter().map(track).collect(),
                    )
                })
                .collect()
        };
        let voice = (
            MediaKind::Voice,
            "matroska".to_string(),
            vec![
                "microphone opus headset".to_string(),
                "system_audio opus speakers".to_string(),
            ],
        );
        let mut enc = SegmentEncoder::new(EncoderConfig::default(), &sources(), 0).unwrap();
        enc.push_video(frame(0, 10)).unwrap();
        for track in 0..2 {
            enc.push_audio(track, &[0.0; VOICE_RATE as usize]).unwrap();
        }
        let done = enc.finish(1_000_000_000).unwrap().wait().unwrap();
        let screen = (
            MediaKind::Screen,
            "matroska".to_string(),
            vec!["screen h264 display".to_string()],
        );
        assert_eq!(describe(&done), vec![screen, voice.clone()]);
        assert_eq!(
            (
                done.encoder.video_codec.as_str(),
                done.encoder.audio_codec.as_str()
            ),
            ("libx264", "libopus")
        );
        assert_eq!(done.encoder.video_size, (1920, 1080));
        let probed = crate::probe(done.blobs[1].plaintext.clone()).unwrap();
        assert_eq!(probed.streams.len(), 2, "two voice tracks");

        let voice_only = SegmentEncoder::new(EncoderConfig::default(), &sources(), 0).unwrap();
        let done = voice_only.finish(1_000_000_000).unwrap().wait().unwrap();
        assert_eq!(describe(&done), vec![voice]);
        assert_eq!(done.encoder.video_size, (0, 0));
    }
}
