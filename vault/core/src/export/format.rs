//! The evidence export's on-disk format: its folders and file names, and the signed index that
//! lists every file, segment and session (written by [`crate::export`], checked offline by
//! [`crate::verify_export`]).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;
use vigil_vault_store::metadata::SegmentFilter;

/// The `kind` of an export index.
pub const INDEX_KIND: &str = "vigil.evidence-export";

/// Index layout version.
pub const INDEX_FORMAT: u32 = 1;

/// The index file's name.
pub const INDEX_FILE: &str = "index.json";

/// The receipt key's file name.
pub const RECEIPT_KEY_FILE: &str = "receipt.pub";

/// The recording recipients' file name.
pub const RECIPIENTS_FILE: &str = "recording.pub";

/// The folder holding one folder per session.
pub const SESSIONS_DIR: &str = "sessions";

/// A blob the vault no longer holds, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedBlob {
    /// Its file name (`NNNNNN.screen.age`).
    pub file: String,
    /// Ciphertext size, as the manifest lists it.
    pub size: u64,
    /// Ciphertext SHA-256, as the manifest lists it.
    pub sha256: String,
    /// `expired` (retention) or `redacted`.
    pub reason: String,
    /// When it was deleted.
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: time::OffsetDateTime,
}

/// One exported file: its path relative to the export folder, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedFile {
    /// `sessions/<session>/<name>`.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// One exported segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexedSegment {
    /// Recording session.
    pub session_id: Uuid,
    /// Sequence number in the session.
    pub sequence: u64,
    /// The manifest's segment id.
    pub segment_id: Uuid,
    /// The enrolled device that signed it.
    pub device_id: Uuid,
    /// Recording start (the manifest's wall clock).
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: time::OffsetDateTime,
    /// SHA-256 of the signed manifest envelope, as the receipt names it.
    pub manifest_sha256: String,
    /// The manifest, the blobs and the receipt (and the tombstone of a redacted segment).
    pub files: Vec<IndexedFile>,
    /// Blobs the manifest lists that the vault deleted (retention, redaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedBlob>,
}

/// The export's table of contents, signed with the vault's receipt key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportIndex {
    /// Always [`INDEX_KIND`].
    pub kind: String,
    /// Always [`INDEX_FORMAT`].
    pub format: u32,
    /// When the export was made.
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: time::OffsetDateTime,
    /// Who made it (`cli:<OS user>`).
    pub exported_by: String,
    /// The reason they stated.
    pub reason: String,
    /// The audit record of the export.
    pub audit_seq: i64,
    /// What was asked for.
    pub selection: Selection,
    /// The key that signs receipts and this index (Ed25519, base64).
    pub receipt_public_key: String,
    /// The recipients the blobs are sealed to (`age1…`).
    pub recording_recipients: Vec<String>,
    /// The vault's earlier receipt keys (base64), replaced by `keys rotate receipt`: receipts
    /// and tombstones they signed still verify, since this signed index vouches for them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier_receipt_keys: Vec<String>,
    /// Every exported segment, by session then sequence.
    pub segments: Vec<IndexedSegment>,
    /// What the vault knew of each exported session, so a checker can tell a segment left out
    /// of the selection from one the vault never had.
    pub sessions: Vec<SessionAtExport>,
}

/// A session as the vault knew it when the export was made ([`crate::gaps`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionAtExport {
    /// The session.
    pub session_id: Uuid,
    /// The highest sequence number the vault held.
    pub last_sequence: i64,
    /// The vault held the segment marked last of the session.
    pub closed: bool,
    /// Sequence numbers the vault did not hold (inclusive ranges).
    pub missing: Vec<(i64, i64)>,
    /// Of those, what the agent's heartbeat said it still held (in transit).
    pub in_transit: Vec<(i64, i64)>,
    /// Of those, what the agent's heartbeat said it no longer held (lost).
    pub lost: Vec<(i64, i64)>,
    /// The highest sequence number the agent reported sealed, if it reported.
    pub produced: Option<i64>,
}

fn covered(ranges: &[(i64, i64)], n: i64) -> bool {
    ranges.iter().any(|(a, b)| (*a..=*b).contains(&n))
}

impl SessionAtExport {
    /// Why the sequence numbers `first..=last` are absent from an export of this session.
    pub fn explain_gap(&self, first: i64, last: i64) -> &'static str {
        let all = |ranges: &[(i64, i64)]| (first..=last).all(|n| covered(ranges, n));
        if all(&self.lost) {
            "never received by the vault; reported lost by the agent"
        } else if all(&self.in_transit) {
            "not yet received by the vault; still held by the agent (in transit)"
        } else if all(&self.missing) {
            "never received by the vault"
        } else if (first..=last).any(|n| covered(&self.missing, n)) {
            "partly outside the selection, partly never received by the vault"
        } else {
            "held by the vault; outside the selection"
        }
    }

    /// Why the export holds no segment that ends the session, `last_exported` being its last.
    pub fn explain_open_end(&self, last_exported: i64) -> String {
        if self.closed {
            return format!(
                "the vault holds the session up to its end (#{}); outside the selection",
                self.last_sequence
            );
        }
        let mut why = format!(
            "the vault had not received the session's end (highest held #{})",
            self.last_sequence.max(last_exported)
        );
        if let Some(produced) = self.produced {
            why.push_str(&format!("; the agent reported #{produced} sealed"));
        }
        why
    }
}

/// `{"index": {…}, "signature": {…}}`, the signature over the exact bytes of `index`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexEnvelope<'a> {
    #[serde(borrow)]
    pub(crate) index: &'a RawValue,
    pub(crate) signature: IndexSignature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexSignature {
    pub(crate) alg: String,
    pub(crate) public_key: String,
    pub(crate) sig: String,
}

/// Whether `path` is `sessions/<session>/<plain name>`: an index from an untrusted export must
/// not make the checker read files elsewhere.
pub(crate) fn is_export_path(path: &str, session: Uuid) -> bool {
    let mut parts = path.split('/');
    parts.next() == Some(SESSIONS_DIR)
        && parts.next() == Some(session.to_string().as_str())
        && parts
            .next()
            .is_some_and(vigil_vault_store::blobs::is_safe_name)
        && parts.next().is_none()
}

/// What was asked for; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Only this session.
    pub session: Option<Uuid>,
    /// Only this device.
    pub device: Option<Uuid>,
    /// Recorded at or after this time.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub from: Option<time::OffsetDateTime>,
    /// Recorded before this time.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub to: Option<time::OffsetDateTime>,
}

impl Selection {
    /// The metadata store's filter for this selection.
    pub fn filter(&self) -> SegmentFilter {
        SegmentFilter {
            session: self.session,
            device: self.device,
            from: self.from.map(|t| t.unix_timestamp()),
            to: self.to.map(|t| t.unix_timestamp()),
        }
    }

    /// `session=… device=… from=… to=…` (or `all`), for the audit record.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.session {
            parts.push(format!("session={s}"));
        }
        if let Some(d) = self.device {
            parts.push(format!("device={d}"));
        }
        if let Some(t) = self.from {
            parts.push(format!("from={}", crate::clock::rfc3339(t)));
        }
        if let Some(t) = self.to {
            parts.push(format!("to={}", crate::clock::rfc3339(t)));
        }
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join(" ")
        }
    }
}
