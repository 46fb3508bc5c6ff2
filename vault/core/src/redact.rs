//! Range redaction (PCI DSS 12.10.7: card data found where it should not be): the media of
//! every segment of a session (or device) overlapping a time range is destroyed in the blob
//! store, both kinds. The segment row and its signed manifest stay; a tombstone signed by the
//! vault's receipt key ([`vigil_proto::tombstone`]) stands in for the blobs, stored in the
//! metadata store ([`tombstone`]) and carried by exports. The audit record
//! (`recording.redact`) is written before anything is destroyed and holds the evidence: each
//! segment id, the SHA-256 of each blob destroyed and of each tombstone.
//!
//! A legal hold blocks deletion, redaction included: a range with a held segment is refused as
//! a whole (release the hold first, which is audited too).
//!
//! Redacting again completes an interrupted redaction (a segment that has its tombstone but
//! still some media loses it) without a second tombstone.

use uuid::Uuid;
use vigil_proto::tombstone::{
    DestroyedBlob, SignedTombstone, Tombstone, TOMBSTONE_FORMAT, TOMBSTONE_KIND,
};
use vigil_proto::{sha256_hex, MediaKind, SignedManifest};

use crate::audit::{self, stated_reason};
use crate::holds::ActiveHolds;
use crate::Vault;
use vigil_vault_store::blobs::BlobError;
use vigil_vault_store::metadata::lifecycle::{
    Deletion, OverlapFilter, SegmentLifecycle, TombstoneRecord, DELETED_REDACTED,
};
use vigil_vault_store::metadata::{MetadataStore, StoreError};

/// Audit action: recordings in a range were destroyed.
pub const ACTION_REDACT: &str = "recording.redact";

/// What to redact.
#[derive(Debug, Clone)]
pub struct RedactRequest {
    /// Only this session.
    pub session: Option<Uuid>,
    /// Only this device (agent).
    pub device: Option<Uuid>,
    /// Range start.
    pub from: time::OffsetDateTime,
    /// Range end (exclusive).
    pub to: time::OffsetDateTime,
    /// The case it serves.
    pub case: String,
    /// Why.
    pub reason: String,
}

/// One redacted segment.
#[derive(Debug, Clone)]
pub struct RedactedSegment {
    /// The segment.
    pub segment_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// Its sequence number.
    pub sequence: i64,
    /// Its blobs and what became of each.
    pub blobs: Vec<DestroyedBlob>,
    /// SHA-256 of its signed tombstone.
    pub tombstone_sha256: String,
}

/// What a redaction did.
#[derive(Debug, Clone)]
pub struct RedactReport {
    /// The segments redacted.
    pub segments: Vec<RedactedSegment>,
    /// The audit record.
    pub audit_seq: i64,
}

/// Why a redaction failed.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// No case.
    #[error("a redaction needs a case (--case)")]
    MissingCase,
    /// No reason.
    #[error("a redaction needs a reason (--reason)")]
    MissingReason,
    /// Neither a session nor a device.
    #[error("a redaction needs --session or --device")]
    NoTarget,
    /// The range is empty.
    #[error("the range ends before it starts")]
    BadRange,
    /// No stored segment overlaps the range.
    #[error("no stored segment overlaps the range")]
    NothingInRange,
    /// An active legal hold covers a segment of the range: nothing was destroyed.
    #[error(
        "segment {segment} is under legal hold {hold}: release the hold first; nothing destroyed"
    )]
    Held {
        /// The held segment.
        segment: Uuid,
        /// The hold covering it.
        hold: Uuid,
    },
    /// A stored manifest cannot be read back.
    #[error("stored manifest of segment {0} is unreadable: {1}")]
    StoredCorrupt(Uuid, String),
    /// The audit record could not be written: nothing was destroyed.
    #[error("cannot write the audit record, nothing destroyed: {0}")]
    Audit(#[source] StoreError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed (what was destroyed before stays destroyed; run again).
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

fn kind_of(kind: MediaKind) -> MediaKind {
    match kind {
        MediaKind::Voice => MediaKind::Voice,
        _ => MediaKind::Screen,
    }
}

/// A segment's tombstone, made (and signed) before anything is destroyed.
fn tombstone_for(
    vault: &Vault,
    seg: &SegmentLifecycle,
    request: &RedactRequest,
    actor: &str,
    now: time::OffsetDateTime,
) -> Result<SignedTombstone, RedactError> {
    let s = &seg.segment;
    let seq = u64::try_from(s.sequence).unwrap_or_default();
    let manifest = vault
        .blobs()
        .get(s.session_id, &vigil_proto::naming::manifest_file(seq))?;
    let signed = SignedManifest::verify(&manifest, None)
        .map_err(|e| RedactError::StoredCorrupt(s.segment_id, e.to_string()))?;
    let blobs = signed
        .document
        .blobs
        .iter()
        .map(|b| DestroyedBlob {
            file: b.file.clone(),
            kind: b.kind.as_str().into(),
            size: b.size,
            sha256: b.sha256.clone(),
            state: if seg.deleted(kind_of(b.kind)).is_some() {
                "already_deleted".into()
            } else {
                "destroyed".into()
            },
        })
        .collect();
    SignedTombstone::sign(
        Tombstone {
            kind: TOMBSTONE_KIND.into(),
            format: TOMBSTONE_FORMAT,
            segment_id: s.segment_id,
            session_id: s.session_id,
            sequence: seq,
            manifest_sha256: s.manifest_sha256.clone(),
            blobs,
            range_from: request.from,
            range_to: request.to,
            case: request.case.clone(),
            reason: request.reason.clone(),
            actor: actor.to_owned(),
            redacted_at: now,
        },
        &vault.keys().receipt,
    )
    .map_err(|e| RedactError::StoredCorrupt(s.segment_id, format!("tombstone not signed: {e}")))
}

/// Redacts the range; see the module documentation.
pub fn redact(
    vault: &Vault,
    request: &RedactRequest,
    actor: &str,
) -> Result<RedactReport, RedactError> {
    redact_as(vault, request, actor, ACTION_REDACT, None)
}

/// [`redact`], audited as `action`, with `audit_reason` (default: `case <case>: <reason>`).
pub(crate) fn redact_as(
    vault: &Vault,
    request: &RedactRequest,
    actor: &str,
    action: &str,
    audit_reason: Option<String>,
) -> Result<RedactReport, RedactError> {
    let mut request = request.clone();
    request.case = stated_reason(Some(&request.case)).ok_or(RedactError::MissingCase)?;
    request.reason = stated_reason(Some(&request.reason)).ok_or(RedactError::MissingReason)?;
    if request.session.is_none() && request.device.is_none() {
        return Err(RedactError::NoTarget);
    }
    let (from, to) = (request.from.unix_timestamp(), request.to.unix_timestamp());
    if to <= from {
        return Err(RedactError::BadRange);
    }
    let found = vault.store().segments_overlapping(&OverlapFilter {
        session: request.session,
        device: request.device,
        from,
        to,
    })?;
    if found.is_empty() {
        return Err(RedactError::NothingInRange);
    }
    let holds = ActiveHolds::load(vault.store())?;
    if let Some((seg, hold)) = found
        .iter()
        .find_map(|seg| holds.covering(seg).map(|hold| (seg, hold)))
    {
        return Err(RedactError::Held {
            segment: seg.segment.segment_id,
            hold,
        });
    }
    let now = crate::clock::now();
    // (segment, tombstone to store, or None when stored by an earlier run)
    let mut work: Vec<(&SegmentLifecycle, Option<SignedTombstone>, RedactedSegment)> = Vec::new();
    for seg in &found {
        let s = &seg.segment;
        let (tombstone, bytes) = match vault.store().tombstone(s.segment_id)? {
            Some(stored) => (None, stored.tombstone),
            None => {
                let t = tombstone_for(vault, seg, &request, actor, now)?;
                let bytes = t.as_bytes().to_vec();
                (Some(t), bytes)
            }
        };
        let blobs = match &tombstone {
            Some(t) => t.document.blobs.clone(),
            // Stored by an earlier run: its blobs, if it still verifies (it names them).
            None => SignedTombstone::verify(&bytes, Some(&vault.keys().receipt.verifying_key()))
                .map(|t| t.document.blobs)
                .unwrap_or_default(),
        };
        work.push((
            seg,
            tombstone,
            RedactedSegment {
                segment_id: s.segment_id,
                session_id: s.session_id,
                sequence: s.sequence,
                blobs,
                tombstone_sha256: sha256_hex(&bytes),
            },
        ));
    }
    let evidence: Vec<serde_json::Value> = work
        .iter()
        .map(|(_, _, r)| {
            serde_json::json!({
                "segment_id": r.segment_id,
                "session_id": r.session_id,
                "sequence": r.sequence,
                "tombstone_sha256": r.tombstone_sha256,
                "blobs": r.blobs.iter().map(|b| serde_json::json!({
                    "file": b.file, "sha256": b.sha256, "size": b.size, "state": b.state,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let target = serde_json::json!({
        "session": request.session,
        "device": request.device,
        "from": crate::clock::rfc3339(request.from),
        "to": crate::clock::rfc3339(request.to),
        "segments": evidence,
    })
    .to_string();
    let audit = audit::record(
        vault.store(),
        actor,
        action,
        Some(target),
        Some(audit_reason.unwrap_or_else(|| format!("case {}: {}", request.case, request.reason))),
    )
    .map_err(RedactError::Audit)?;

    let mut segments = Vec::with_capacity(work.len());
    for (seg, tombstone, redacted) in work {
        destroy(vault.store(), vault, seg, tombstone, now.unix_timestamp())?;
        segments.push(redacted);
    }
    tracing::info!(
        segments = segments.len(),
        audit = audit.seq,
        "range redacted"
    );
    Ok(RedactReport {
        segments,
        audit_seq: audit.seq,
    })
}

/// Stores the tombstone (first, so a crash leaves a redaction to complete, never media
/// without a record of the order), then destroys both blobs and marks them.
fn destroy(
    store: &dyn MetadataStore,
    vault: &Vault,
    seg: &SegmentLifecycle,
    tombstone: Option<SignedTombstone>,
    now: i64,
) -> Result<(), RedactError> {
    let s = &seg.segment;
    if let Some(t) = tombstone {
        store.insert_tombstone(&TombstoneRecord {
            segment_id: s.segment_id,
            session_id: s.session_id,
            sequence: s.sequence,
            created_at: now,
            sha256: sha256_hex(t.as_bytes()),
            tombstone: t.as_bytes().to_vec(),
        })?;
    }
    let seq = u64::try_from(s.sequence).unwrap_or_default();
    for kind in MediaKind::ALL {
        vault
            .blobs()
            .delete(s.session_id, &vigil_proto::naming::blob_file(seq, kind))?;
        if seg.deleted(kind).is_none() {
            store.mark_deleted(
                s.segment_id,
                kind,
                &Deletion {
                    at: now,
                    reason: DELETED_REDACTED.into(),
                },
            )?;
        }
    }
    Ok(())
}

/// The signed tombstone of a redacted segment, as stored.
pub fn tombstone(
    store: &dyn MetadataStore,
    segment_id: Uuid,
) -> Result<Option<TombstoneRecord>, StoreError> {
    store.tombstone(segment_id)
}
