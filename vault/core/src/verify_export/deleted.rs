//! The check of media deleted by retention or redaction: the checker accepts a blob missing
//! from the export only when the signed index says it was deleted, and, for a redaction, when
//! the tombstone verifies with the receipt key and names that blob; a blob missing without such
//! a record is still tampering.

use std::fs;
use std::path::Path;

use uuid::Uuid;
use vigil_vault_store::metadata::lifecycle::DELETED_REDACTED;

use super::report::{DeletedMedia, ExportVerifyReport};
use crate::export::format::{ExportIndex, IndexedSegment, SESSIONS_DIR};

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
    key: Option<&super::ReceiptKeys>,
    report: &mut ExportVerifyReport,
) {
    let (session, seq) = (Some(seg.session_id), Some(seg.sequence));
    let folder = format!("{SESSIONS_DIR}/{}", seg.session_id);
    let tombstone_rel = format!(
        "{folder}/{}",
        vigil_proto::naming::tombstone_file(seg.sequence)
    );
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
            Ok(bytes) => match key.verify::<vigil_proto::tombstone::Tombstone>(&bytes) {
                Err(e) => report.tampered(session, seq, Some(tombstone_rel.clone()), e),
                Ok(t)
                    if t.document.segment_id != seg.segment_id
                        || t.document.manifest_sha256 != seg.manifest_sha256 =>
                {
                    report.tampered(
                        session,
                        seq,
                        Some(tombstone_rel.clone()),
                        "the tombstone names another segment".into(),
                    )
                }
                Ok(t) => tombstone = Some(t.document),
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
    key: Option<&super::ReceiptKeys>,
    report: &mut ExportVerifyReport,
) {
    for seg in index.segments.iter().filter(|s| !s.deleted.is_empty()) {
        check_segment(out, seg, key, report);
    }
}
