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
pub mod policy_sync;
mod sealing;

pub use config::{AgentConfig, ConfigError};
pub use delivery::DeliveryError;
pub use engine::{record, RecordError, RecordSummary};
pub use masking::todays_usage;
pub use options::RecordOptions;
pub use sealing::SealingError;

/// The OS user the agent records for.
pub(crate) fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// RFC 3339 text of a time (UTC).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
