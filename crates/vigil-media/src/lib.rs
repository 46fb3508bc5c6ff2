//! The media stage of the agent (brief §2): the delay line that holds raw media before encoding,
//! the redaction stage that applies the mask timeline, and the encoder/segmenter that turns
//! media into N-second Matroska segments (H.264 screen; microphone and system audio as two Opus
//! tracks), held in memory for the sealer.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod audio_timeline;
mod banner;
mod container;
mod delay;
mod encoder;
mod encoder_config;
mod error;
mod redact;
mod screen_thread;
mod screen_track;
mod segmenter;

pub use container::{join_tracks, probe, ProbeReport, ProbeStream};
pub use delay::DelayLine;
pub use encoder::{EncodedBlob, EncodedSegment, VoiceSources};
pub use encoder_config::{CropRect, EncoderConfig};
pub use error::{MediaError, MediaErrorKind};
pub use redact::{MaskSpan, MaskTimeline, MaskTimelineHandle};
pub use segmenter::{FinishedSegment, Segmenter, SegmenterConfig};

/// Sample rate of the voice tracks: wideband speech (7 kHz audio bandwidth, above any telephone
/// line), at a third of the Opus encoding cost of 48 kHz.
pub const VOICE_RATE: u32 = 16_000;
