//! Media deleted by retention or redaction, as an export records it: a segment whose blob was
//! deleted is still exported (its signed manifest and receipt), with a [`DeletedBlob`] entry per
//! deleted blob in the signed index, and a redacted segment carries its signed tombstone
//! (`NNNNNN.tombstone.json`). `crate::verify_export`'s `deleted` module checks them.

use vigil_proto::SignedManifest;

use super::format::DeletedBlob;
use crate::Vault;
use vigil_proto::MediaKind;
use vigil_vault_store::metadata::lifecycle::TombstoneRecord;
use vigil_vault_store::metadata::{SegmentRecord, StoreError};

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
    for blob in &signed.document.blobs {
        let kind = if blob.kind.as_str() == MediaKind::Voice.as_str() {
            MediaKind::Voice
        } else {
            MediaKind::Screen
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
