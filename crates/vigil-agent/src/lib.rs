//! The Vigil agent's engine: wires capture → delay line → redaction → encoder/segmenter →
//! sealer → spool (brief §2), with one monotonic clock for the session.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
pub mod control;
mod engine;
mod masking;
pub mod native_host;
mod sealing;

pub use config::{AgentConfig, ConfigError};
pub use engine::{record, RecordError, RecordOptions, RecordSummary};
