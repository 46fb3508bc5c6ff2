//! The Vigil agent's engine: wires capture → delay line → redaction → encoder/segmenter →
//! sealer → spool (brief §2), with one monotonic clock for the session.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod config;
pub mod control;
mod delivery;
mod engine;
pub mod enrollment;
pub mod keystore;
mod live_policy;
mod masking;
pub mod native_host;
mod options;
mod os;
pub mod policy_sync;
pub mod rekey;
mod sealing;

pub use config::{AgentConfig, ConfigError, MANAGED_CONFIG};
pub use delivery::DeliveryError;
pub use engine::{record, RecordError, RecordSummary};
pub use masking::todays_usage;
pub use options::RecordOptions;
pub use sealing::SealingError;
