//! The messages of the vault's HTTP API that the agent and the vault both speak (JSON bodies).
//! The segment upload body is [`crate::frame`]; its answer is a [`crate::receipt`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signed::{check_kind, Document, KeyRole, Signed};

/// The `kind` of every heartbeat.
pub const HEARTBEAT_KIND: &str = "vigil.heartbeat";

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
    /// Always [`HEARTBEAT_KIND`]: a signature over a heartbeat is never one over another message.
    pub kind: String,
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
    /// The agent's own state (absent from agents older than issue 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentReport>,
}

/// What the agent says about itself in each heartbeat: the live state the console shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentReport {
    /// The agent's version.
    pub agent_version: String,
    /// The policy version it applies (0: none received yet, built-in defaults).
    pub policy_version: u64,
    /// Policies it refused since it last reported (bad signature, other signer, …).
    #[serde(default)]
    pub policy_refusals: Vec<PolicyRefusal>,
    /// A recording is running.
    pub recording: bool,
    /// Screen capture is running.
    pub screen: bool,
    /// Some mask is in force now (payment field, DTMF, CTI).
    pub masked: bool,
    /// The agent paused the recording.
    pub paused: bool,
    /// Seconds masked today (UTC day, this recording session and earlier ones of the day).
    #[serde(default)]
    pub masked_seconds_today: u64,
    /// Seconds paused today (UTC day), counted against the policy's daily budget.
    #[serde(default)]
    pub paused_seconds_today: u64,
    /// Pauses refused since it last reported (not allowed, or the daily budget spent), with
    /// the reason the agent gave; the vault audits each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pause_refusals: Vec<PolicyRefusal>,
    /// Mask triggers that do not work now (no browser extension attached, no accessibility
    /// bus), with why: while one is down, fields it alone sees are not masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers_down: Vec<TriggerDown>,
}

/// A mask trigger that does not work, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDown {
    /// The trigger (`extension`, `accessibility`, …).
    pub trigger: String,
    /// Why it is down, as the agent says it.
    pub detail: String,
}

/// A policy the agent refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRefusal {
    /// When it was refused.
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// Why (the verification error; never the policy's content).
    pub reason: String,
}

/// The `kind` of every policy poll.
pub const POLICY_POLL_KIND: &str = "vigil.policy_poll";

/// The agent's request for its policy (`POST /v1/policy/poll`, signed by the device key): the
/// vault answers at once when it has a version newer than `after`, else holds the request up
/// to `wait_seconds` and answers as soon as one appears (long poll).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPoll {
    /// Always [`POLICY_POLL_KIND`].
    pub kind: String,
    /// The enrolled device id.
    pub device_id: Uuid,
    /// When the agent sent it (the vault refuses stale polls, so a captured one cannot be
    /// replayed later).
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: time::OffsetDateTime,
    /// The version the agent holds (0: none).
    pub after: u64,
    /// How long the vault may hold the request, in seconds.
    pub wait_seconds: u32,
}

/// A policy poll with the device's signature.
pub type SignedPolicyPoll = Signed<PolicyPoll>;

impl Document for PolicyPoll {
    const FIELD: &'static str = "poll";
    const NAME: &'static str = "policy poll";
    const SIGNER: KeyRole = KeyRole::Device;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, POLICY_POLL_KIND, 0, 0)
    }
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

/// A heartbeat with the device's signature (the body of `POST /v1/heartbeat`).
pub type SignedHeartbeat = Signed<Heartbeat>;

impl Document for Heartbeat {
    const FIELD: &'static str = "heartbeat";
    const SIGNER: KeyRole = KeyRole::Device;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, HEARTBEAT_KIND, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedErrorKind;
    use ed25519_dalek::SigningKey;

    #[test]
    fn heartbeats_verify_and_forgeries_do_not() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let heartbeat = Heartbeat {
            kind: HEARTBEAT_KIND.into(),
            device_id: Uuid::new_v4(),
            sent_at: time::OffsetDateTime::UNIX_EPOCH,
            sessions: vec![SessionProgress {
                session_id: Uuid::new_v4(),
                produced: 4,
                pending: vec![3, 4],
                closed: false,
            }],
            backlog: Backlog::default(),
            agent: Some(AgentReport {
                agent_version: "1.0".into(),
                policy_version: 3,
                ..Default::default()
            }),
        };
        let signed = SignedHeartbeat::sign(heartbeat.clone(), &key).unwrap();
        let back = SignedHeartbeat::verify(signed.as_bytes(), None).unwrap();
        assert_eq!(back.document, heartbeat);
        assert_eq!(back.signer, key.verifying_key());
        let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
        let forged = text.replace("\"produced\":4", "\"produced\":2");
        assert_eq!(
            SignedHeartbeat::verify(forged.as_bytes(), None)
                .unwrap_err()
                .kind(),
            SignedErrorKind::BadSignature
        );
    }
}
