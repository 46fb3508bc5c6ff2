//! Media deleted by retention or redaction, in exports and in their offline check.
//!
//! A segment whose blob was deleted is still exported: its signed manifest and receipt, and in
//! the signed index a [`DeletedBlob`] entry per deleted blob (file, SHA-256, size, why, when).
//! A redacted segment also carries its signed tombstone (`NNNNNN.tombstone.json`). The checker
//! accepts a blob missing from the export only when the index says it was deleted, and, for a
//! redaction, when the tombstone verifies with the receipt key and names that blob; a blob
//! missing without such a record is still tampering.

use std::fmt;
use std::fs;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_proto::tombstone::SignedTombstone;
use vigil_proto::SignedManifest;

use super::{ExportIndex, IndexedSegment, SESSIONS_DIR};
use crate::ingest::file_name;
use crate::store::lifecycle::{BlobKind, TombstoneRecord, DELETED_REDACTED};
use crate::store::{SegmentRecord, StoreError};
use crate::verify_export::ExportVerifyReport;
use crate::Vault;

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

/// The blobs of `record` the vault deleted, and its tombstone if it was redacted.
pub(super) fn deleted_of(
    vault: &Vault,
    record: &SegmentRecord,
    signed: &SignedManifest,
) -> Result<(Vec<DeletedBlob>, Option<TombstoneRecord>), StoreError> {
    let Some(life) = vault.store().segment_lifecycle(record.segment_id)? else {
        return Ok((Vec::new(), None));
    };
    let mut deleted = Vec::new();
    for blob in &signed.manifest.blobs {
        let kind = if blob.kind.as_str() == BlobKind::Voice.as_str() {
            BlobKind::Voice
        } else {
            BlobKind::Screen
        };
        if let Some(d) = life.deleted(kind) {
            deleted.push(DeletedBlob {
                file: blob.file.clone(),
                size: blob.size,
                sha256: blob.sha256.clone(),
                reason: d.reason.clone(),
                deleted_at: time::OffsetDateTime::from_unix_timestamp(d.at)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            });
        }
    }
    let tombstone = vault.store().tombstone(record.segment_id)?;
    Ok((deleted, tombstone))
}

/// The tombstone's file name in a session folder.
pub(super) fn tombstone_file(sequence: u64) -> String {
    file_name(sequence, "tombstone.json")
}

/// Media the checker found deleted, with a record that explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedMedia {
    /// The session.
    pub session: Uuid,
    /// The segment's sequence number.
    pub sequence: u64,
    /// The blob's file name.
    pub file: String,
    /// `expired` or `redacted`.
    pub reason: String,
    /// When.
    pub deleted_at: time::OffsetDateTime,
}

impl fmt::Display for DeletedMedia {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (label, how) = if self.reason == DELETED_REDACTED {
            (
                "REDACTED",
                "destroyed by range redaction; the signed tombstone verifies",
            )
        } else {
            ("EXPIRED", "deleted by retention")
        };
        write!(
            f,
            "{label} session {} #{} ({}): {how} at {}",
            self.session,
            self.sequence,
            self.file,
            crate::rfc3339(self.deleted_at)
        )
    }
}

/// Whether the index explains the absence of `file` in `session`'s folder.
pub(crate) fn excused(index: Option<&ExportIndex>, session: Uuid, file: &str) -> bool {
    index.is_some_and(|i| {
        i.segments
            .iter()
            .filter(|s| s.session_id == session)
            .any(|s| s.deleted.iter().any(|d| d.file == file))
    })
}

fn check_segment(
    out: &Path,
    seg: &IndexedSegment,
    key: Option<&VerifyingKey>,
    report: &mut ExportVerifyReport,
) {
    let (session, seq) = (Some(seg.session_id), Some(seg.sequence));
    let folder = format!("{SESSIONS_DIR}/{}", seg.session_id);
    let tombstone_rel = format!("{folder}/{}", tombstone_file(seg.sequence));
    let mut tombstone = None;
    if seg.deleted.iter().any(|d| d.reason == DELETED_REDACTED) {
        let Some(key) = key else { return };
        match fs::read(out.join(&tombstone_rel)) {
            Err(_) => report.tampered(
                session,
                seq,
                Some(tombstone_rel.clone()),
                "the index says the segment was redacted, but its tombstone is missing".into(),
            ),
            Ok(bytes) => match SignedTombstone::verify(&bytes, key) {
                Err(e) => report.tampered(session, seq, Some(tombstone_rel.clone()), e.to_string()),
                Ok(t)
                    if t.tombstone.segment_id != seg.segment_id
                        || t.tombstone.manifest_sha256 != seg.manifest_sha256 =>
                {
                    report.tampered(
                        session,
                        seq,
                        Some(tombstone_rel.clone()),
                        "the tombstone names another segment".into(),
                    )
                }
                Ok(t) => tombstone = Some(t.tombstone),
            },
        }
    }
    for d in &seg.deleted {
        let rel = format!("{folder}/{}", d.file);
        if out.join(&rel).exists() {
            report.tampered(
                session,
                seq,
                Some(rel),
                "the index says this blob was deleted, yet it is here".into(),
            );
            continue;
        }
        if d.reason == DELETED_REDACTED {
            let named = tombstone.as_ref().is_some_and(|t| {
                t.blobs
                    .iter()
                    .any(|b| b.file == d.file && b.sha256 == d.sha256 && b.size == d.size)
            });
            if !named {
                if tombstone.is_some() {
                    report.tampered(
                        session,
                        seq,
                        Some(rel),
                        "the tombstone does not name this blob".into(),
                    );
                }
                continue;
            }
        }
        report.deleted.push(DeletedMedia {
            session: seg.session_id,
            sequence: seg.sequence,
            file: d.file.clone(),
            reason: d.reason.clone(),
            deleted_at: d.deleted_at,
        });
    }
}

/// Checks every deletion the index records (see the module documentation).
pub(crate) fn check_deleted(
    out: &Path,
    index: &ExportIndex,
    key: Option<&VerifyingKey>,
    report: &mut ExportVerifyReport,
) {
    for seg in index.segments.iter().filter(|s| !s.deleted.is_empty()) {
        check_segment(out, seg, key, report);
    }
}
