//! The media stage of the agent (brief §2): the delay line that holds raw media before encoding,
//! the redaction stage that applies the mask timeline, and the encoder/segmenter that turns
//! media into N-second Matroska segments (H.264 screen; microphone and system audio as two Opus
//! tracks), held in memory for the sealer.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod audio_timeline;
mod container;
mod delay;
mod encoder;
mod error;
mod redact;
mod segmenter;

pub use container::{join_tracks, probe, ProbeReport, ProbeStream};
pub use delay::DelayLine;
pub use encoder::{EncodedSegment, EncoderConfig};
pub use error::{MediaError, MediaErrorKind};
pub use redact::{MaskSpan, MaskTimeline, ScreenMask};
pub use segmenter::{FinishedSegment, Segmenter, SegmenterConfig};

/// Sample rate of the voice tracks.
pub const VOICE_RATE: u32 = 48_000;
