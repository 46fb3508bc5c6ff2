//! The messages of the vault's HTTP API that the agent and the vault both speak (JSON bodies).
//! The segment upload body is [`crate::frame`]; its answer is a [`crate::receipt`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The agent's enrollment request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The one-use token IT handed out (`vgt_…`).
    pub token: String,
    /// The device's Ed25519 public key: 32 bytes, base64 or hex.
    pub device_public_key: String,
    /// The machine's host name.
    pub hostname: String,
    /// The OS user the agent records for.
    pub user: String,
}

/// What the vault answers to an enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollResponse {
    /// The device id the vault assigned; manifests carry it as `device_id`.
    pub device_id: Uuid,
    /// The key that signs policy (Ed25519, base64).
    pub policy_public_key: String,
    /// The key that signs ingest receipts (Ed25519, base64).
    pub receipt_public_key: String,
    /// The recording recipients to seal every blob to (`age1…`).
    pub recipients: Vec<String>,
}

/// The agent's periodic report (`POST /v1/heartbeat`, signed by the device key): what it has
/// produced, so the vault can tell a segment still in transit from one that is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    /// The enrolled device id.
    pub device_id: Uuid,
    /// When the agent sent it (its wall clock).
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: time::OffsetDateTime,
    /// Per session still known to the agent: the highest sequence number it sealed, and the
    /// ones it sealed but has not had acknowledged yet.
    pub sessions: Vec<SessionProgress>,
    /// The outbox's backlog.
    pub backlog: Backlog,
}

/// One session as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionProgress {
    /// The recording session.
    pub session_id: Uuid,
    /// The highest sequence number sealed so far.
    pub produced: u64,
    /// Sealed but not yet acknowledged by the vault (still in transit).
    pub pending: Vec<u64>,
    /// The session ended (its last segment was sealed).
    pub closed: bool,
}

/// The agent's outbox backlog.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backlog {
    /// Segments waiting for upload.
    pub segments: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// The oldest one's sealing time, if any.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub oldest: Option<time::OffsetDateTime>,
}
