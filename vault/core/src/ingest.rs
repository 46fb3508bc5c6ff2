//! Verified, idempotent ingest of one segment (`PUT /v1/segments/{session}/{sequence}`).
//!
//! Checks, in order: the ids in the path, the body's framing, the manifest's signature, that
//! the signer is an enrolled and unrevoked device, that the manifest names the same session,
//! sequence and device, that the blobs are exactly those the manifest lists with its sizes and
//! SHA-256, that every blob is sealed for the vault alone (`crate::sealed_for`: its header opens
//! with the recording identity and names no other recipient), that the session belongs to that device, and the hash chain with both stored
//! neighbours. Segments may arrive in any order: each link is checked when the second of its
//! two segments arrives, under the lock of its session (uploads of other sessions run in
//! parallel). Files are made durable before the metadata row is written. The same
//! segment twice gets the first receipt again; the same position or segment id with other
//! content is refused (409) and logged.

use uuid::Uuid;
use vigil_proto::SignedErrorKind as ManifestKind;
use vigil_proto::{sha256_hex, MediaKind, SegmentManifest, SignedError, SignedManifest};

use crate::Vault;
use vigil_proto::frame::{FrameError, SegmentBody};
use vigil_proto::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT, RECEIPT_KIND};
use vigil_vault_store::blobs::BlobError;
use vigil_vault_store::metadata::{DeviceRecord, SegmentRecord, StoreError};

/// Audit action: a device uploaded a segment not sealed for the vault alone.
pub const ACTION_REFUSED_SEALING: &str = "segment.refused_sealing";
/// The audit action of a session whose device clock was not believed (`[retention]
/// clock_tolerance_days`).
pub const ACTION_CLOCK_CORRECTED: &str = "segment.clock_corrected";

/// A stored segment's receipt.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The signed receipt (the same bytes for every upload of the segment).
    pub receipt: Vec<u8>,
    /// True when the segment was already stored.
    pub duplicate: bool,
}

/// Why a segment was refused. [`IngestError::code`] gives a stable, matchable name.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The session is not a UUID or the sequence not a number from 1.
    #[error("bad segment id: {0}")]
    BadId(String),
    /// The body is not a framed segment.
    #[error("bad body: {0}")]
    Body(#[from] FrameError),
    /// The manifest envelope is malformed or of an unsupported format.
    #[error("malformed manifest: {0}")]
    Malformed(SignedError),
    /// The signature does not verify with the key in the envelope.
    #[error("forged manifest: {0}")]
    BadSignature(SignedError),
    /// The signing key belongs to no enrolled device.
    #[error("device key {0} is not enrolled")]
    UnknownDevice(String),
    /// The signing device was revoked.
    #[error("device {0} is revoked")]
    Revoked(Uuid),
    /// The manifest disagrees with the request or lists blobs that were not sent.
    #[error("manifest does not match the upload: {0}")]
    Mismatch(String),
    /// A blob's size or SHA-256 differs from the manifest.
    #[error("blob {kind} does not match the manifest: {detail}")]
    BlobMismatch {
        /// The blob's media kind.
        kind: &'static str,
        /// Size or hash.
        detail: String,
    },
    /// The session belongs to another device.
    #[error("session {0} belongs to another device")]
    WrongDevice(Uuid),
    /// Another segment is stored under this session and sequence, or this segment id.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The manifest does not chain to its stored neighbours.
    #[error("hash chain broken: {0}")]
    ChainBroken(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// A blob is not sealed for the vault alone (an extra recipient, another key, a passphrase):
    /// stored, it could not be opened, or could be by someone else.
    #[error("{kind} blob is not sealed for the vault: {detail}")]
    NotSealedForVault {
        /// Which blob.
        kind: &'static str,
        /// What is wrong with its header.
        detail: crate::sealed_for::SealedForError,
    },
    /// The receipt could not be signed.
    #[error("receipt not signed: {0}")]
    Receipt(vigil_proto::SignedError),
}

impl IngestError {
    /// A stable name for the refusal, for responses, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::BadId(_) => "bad_id",
            IngestError::Body(_) => "bad_body",
            IngestError::Malformed(_) => "malformed_manifest",
            IngestError::BadSignature(_) => "bad_signature",
            IngestError::UnknownDevice(_) => "unknown_device",
            IngestError::Revoked(_) => "revoked_device",
            IngestError::Mismatch(_) => "manifest_mismatch",
            IngestError::BlobMismatch { .. } => "blob_mismatch",
            IngestError::WrongDevice(_) => "wrong_device",
            IngestError::Conflict(_) => "conflict",
            IngestError::ChainBroken(_) => "chain_broken",
            IngestError::NotSealedForVault { .. } => "not_sealed_for_vault",
            IngestError::Store(_) | IngestError::Blobs(_) | IngestError::Receipt(_) => "internal",
        }
    }
}

/// Parses the path's ids: a hyphenated UUID and a decimal sequence number from 1.
pub fn parse_ids(session: &str, sequence: &str) -> Result<(Uuid, u64), IngestError> {
    let id = (session.len() == 36)
        .then(|| Uuid::try_parse(session).ok())
        .flatten()
        .ok_or_else(|| IngestError::BadId("session must be a hyphenated UUID".into()))?;
    let seq = (!sequence.is_empty()
        && sequence.len() <= 18
        && sequence.bytes().all(|b| b.is_ascii_digit()))
    .then(|| sequence.parse::<u64>().ok())
    .flatten()
    .filter(|s| *s >= 1)
    .ok_or_else(|| IngestError::BadId("sequence must be a number from 1".into()))?;
    Ok((id, seq))
}

/// Refuses a segment whose blobs the vault could not open, or others could (see
/// [`crate::sealed_for`]); such an attempt is audited, as a device sealing to keys of its own
/// is either tampered with or misconfigured.
fn check_sealing(
    vault: &Vault,
    signed: &SignedManifest,
    body: &SegmentBody<'_>,
    device: Uuid,
) -> Result<(), IngestError> {
    let recipients = vault.recipients().len();
    let keys = vault.keys();
    let identities = keys.identities_for_ingest(crate::clock::now().unix_timestamp());
    for (kind, bytes) in &body.blobs {
        let Err(detail) = crate::sealed_for::check_sealed_for(bytes, &identities, recipients)
        else {
            continue;
        };
        let m = &signed.document;
        tracing::error!(%device, session = %m.session_id, seq = m.sequence, error = %detail, "segment not sealed for the vault");
        crate::audit::record(
            vault.store(),
            &format!("device:{device}"),
            ACTION_REFUSED_SEALING,
            Some(format!("{}/{}/{}", m.session_id, m.sequence, kind.as_str())),
            Some(detail.to_string()),
        )?;
        return Err(IngestError::NotSealedForVault {
            kind: kind.as_str(),
            detail,
        });
    }
    Ok(())
}

/// Logs and audits (once per session while the server runs) a segment whose claimed start was
/// not believed: its device's clock is off, or was set off.
fn note_clock_correction(
    vault: &Vault,
    m: &SegmentManifest,
    device: Uuid,
    times: crate::retention::CountedTimes,
) -> Result<(), IngestError> {
    tracing::warn!(%device, session = %m.session_id, seq = m.sequence, skew_seconds = -times.shift,
        "segment's start not believed: counted from its arrival");
    if !vault.first_clock_note(m.session_id) {
        return Ok(());
    }
    crate::audit::record(
        vault.store(),
        &format!("device:{device}"),
        ACTION_CLOCK_CORRECTED,
        Some(m.session_id.to_string()),
        Some(format!(
            "device clock off by {} s: segment {} claims to start at {}, counted from {}",
            -times.shift,
            m.sequence,
            crate::clock::rfc3339(m.start.wall),
            time::OffsetDateTime::from_unix_timestamp(times.start)
                .map_or_else(|_| times.start.to_string(), crate::clock::rfc3339),
        )),
    )?;
    Ok(())
}

/// Refuses a sequence number further ahead of what the session holds than
/// [`crate::gaps::MAX_AHEAD`], so that no upload can make a gap report large.
fn check_ahead(vault: &Vault, session: Uuid, seq: i64) -> Result<(), IngestError> {
    match crate::gaps::beyond_reach(vault.store(), session, seq)? {
        Some(last) => Err(IngestError::BadId(format!(
            "sequence {seq} is more than {} ahead of the session's last stored segment ({last})",
            crate::gaps::MAX_AHEAD
        ))),
        None => Ok(()),
    }
}

fn check_blobs<'a>(
    signed: &SignedManifest,
    body: &SegmentBody<'a>,
) -> Result<Vec<(String, &'a [u8])>, IngestError> {
    let m = &signed.document;
    let mut files = Vec::new();
    for (i, blob) in m.blobs.iter().enumerate() {
        if m.blobs[..i].iter().any(|b| b.kind == blob.kind) {
            return Err(IngestError::Mismatch(format!(
                "{} blob listed twice",
                blob.kind.as_str()
            )));
        }
        let expected = vigil_proto::naming::blob_file(m.sequence, blob.kind);
        if blob.file != expected {
            return Err(IngestError::Mismatch(format!(
                "blob file {:?}, expected {expected:?}",
                blob.file
            )));
        }
        let bytes = body
            .blobs
            .iter()
            .find(|(k, _)| *k == blob.kind)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                IngestError::Mismatch(format!("{} blob not sent", blob.kind.as_str()))
            })?;
        if bytes.len() as u64 != blob.size {
            return Err(IngestError::BlobMismatch {
                kind: blob.kind.as_str(),
                detail: format!("{} bytes, manifest says {}", bytes.len(), blob.size),
            });
        }
        if sha256_hex(bytes) != blob.sha256 {
            return Err(IngestError::BlobMismatch {
                kind: blob.kind.as_str(),
                detail: "SHA-256 differs".into(),
            });
        }
        files.push((expected, bytes));
    }
    if let Some((kind, _)) = body.blobs.iter().find(|(k, _)| m.blob(*k).is_none()) {
        return Err(IngestError::Mismatch(format!(
            "{} blob sent but not in the manifest",
            MediaKind::as_str(*kind)
        )));
    }
    Ok(files)
}

/// What is already stored decides a duplicate (same bytes: the old receipt) or a conflict.
fn existing(
    vault: &Vault,
    session: Uuid,
    seq: i64,
    segment_id: Uuid,
    sha: &str,
) -> Result<Option<Accepted>, IngestError> {
    if let Some(found) = vault.store().segment(session, seq)? {
        if found.manifest_sha256 == sha {
            return Ok(Some(Accepted {
                receipt: found.receipt,
                duplicate: true,
            }));
        }
        tracing::warn!(%session, seq, stored = %found.manifest_sha256, offered = %sha,
            "refused: another segment is stored at this position");
        return Err(IngestError::Conflict(format!(
            "segment #{seq} of session {session} is stored with other content"
        )));
    }
    if let Some(found) = vault.store().segment_by_id(segment_id)? {
        tracing::warn!(%segment_id, stored_session = %found.session_id, stored_seq = found.sequence,
            "refused: segment id reused at another position");
        return Err(IngestError::Conflict(format!(
            "segment id {segment_id} is stored at another position"
        )));
    }
    Ok(None)
}

fn check_chain(
    vault: &Vault,
    session: Uuid,
    seq: i64,
    prev: Option<&str>,
    sha: &str,
) -> Result<(), IngestError> {
    match (seq, prev) {
        (1, Some(_)) => {
            return Err(IngestError::ChainBroken(
                "the first segment names a predecessor".into(),
            ))
        }
        (2.., None) => {
            return Err(IngestError::ChainBroken(
                "no predecessor hash after the first segment".into(),
            ))
        }
        _ => {}
    }
    if let (Some(before), Some(prev)) = (vault.store().segment(session, seq - 1)?, prev) {
        if before.manifest_sha256 != prev {
            return Err(IngestError::ChainBroken(format!(
                "names predecessor {prev}, stored #{} is {}",
                seq - 1,
                before.manifest_sha256
            )));
        }
    }
    if let Some(after) = vault.store().segment(session, seq + 1)? {
        if after.prev_manifest_sha256.as_deref() != Some(sha) {
            return Err(IngestError::ChainBroken(format!(
                "stored #{} does not chain to this segment",
                seq + 1
            )));
        }
    }
    Ok(())
}

/// The checks that must not race with another upload of the same session (under the lock).
fn check_locked(
    vault: &Vault,
    signed: &SignedManifest,
    device: Uuid,
    sha: &str,
) -> Result<Option<Accepted>, IngestError> {
    let m = &signed.document;
    let seq = m.sequence as i64;
    if let Some(done) = existing(vault, m.session_id, seq, m.segment_id, sha)? {
        return Ok(Some(done));
    }
    if let Some(owner) = vault.store().session_device(m.session_id)? {
        if owner != device {
            tracing::warn!(session = %m.session_id, %device, %owner, "refused: session of another device");
            return Err(IngestError::WrongDevice(m.session_id));
        }
    }
    check_chain(
        vault,
        m.session_id,
        seq,
        m.prev_manifest_sha256.as_deref(),
        sha,
    )?;
    Ok(None)
}

/// Verifies and stores one segment; see the module documentation.
pub fn ingest(
    vault: &Vault,
    session: &str,
    sequence: &str,
    body: &[u8],
    uploader: &ed25519_dalek::VerifyingKey,
) -> Result<Accepted, IngestError> {
    let (session, sequence) = parse_ids(session, sequence)?;
    let body = SegmentBody::parse(body)?;
    let (signed, device) = verify_upload(vault, session, sequence, &body, uploader)?;
    let m = &signed.document;
    let blob_files = check_blobs(&signed, &body)?;
    check_sealing(vault, &signed, &body, device.id)?;
    let seq =
        i64::try_from(sequence).map_err(|_| IngestError::BadId("sequence too large".into()))?;
    check_ahead(vault, session, seq)?;
    let sha = sha256_hex(body.manifest);
    if let Some(done) = existing(vault, session, seq, m.segment_id, &sha)? {
        return Ok(done);
    }

    let mut files: Vec<(String, &[u8])> =
        vec![(vigil_proto::naming::manifest_file(sequence), body.manifest)];
    files.extend(blob_files);
    let staged = vault.blobs().stage(session, &files)?;

    let _guard = vault.session_lock(session);
    let now = crate::clock::now();
    let receipt = check_locked(vault, &signed, device.id, &sha).and_then(|done| match done {
        Some(done) => Ok(Err(done)),
        None => sign_receipt(vault, m, &device, &sha, now).map(Ok),
    });
    let receipt = match receipt {
        Ok(Ok(receipt)) => receipt,
        Ok(Err(done)) => {
            vault.blobs().discard(staged);
            return Ok(done);
        }
        Err(e) => {
            vault.blobs().discard(staged);
            return Err(e);
        }
    };
    vault.blobs().commit(staged)?;
    store_row(vault, m, &device, seq, sha, now, &receipt)?;
    tracing::debug!(%session, seq, device = %device.id, "segment stored");
    Ok(Accepted {
        receipt: receipt.as_bytes().to_vec(),
        duplicate: false,
    })
}

/// Who sent it: the manifest verifies, is signed by the key that signed the upload, by an
/// enrolled and unrevoked device, and names the path's session and sequence and that device.
fn verify_upload(
    vault: &Vault,
    session: Uuid,
    sequence: u64,
    body: &SegmentBody<'_>,
    uploader: &ed25519_dalek::VerifyingKey,
) -> Result<(SignedManifest, DeviceRecord), IngestError> {
    let signed = SignedManifest::verify(body.manifest, None).map_err(|e| match e.kind() {
        ManifestKind::BadSignature => IngestError::BadSignature(e),
        _ => IngestError::Malformed(e),
    })?;
    // The device that signed the upload (checked before its body was read) signed this too,
    // with the same key or, within the grace period, the key it replaced (a segment sealed
    // before the device re-keyed).
    let now = crate::clock::now().unix_timestamp();
    let key_id = vigil_proto::device_key_id(&signed.signer);
    let device = crate::rekey::device_for_key(vault.store(), &signed.signer.to_bytes(), now)?
        .ok_or_else(|| IngestError::UnknownDevice(key_id.clone()))?;
    if signed.signer != *uploader {
        let same_device = crate::rekey::device_for_key(vault.store(), uploader.as_bytes(), now)?
            .is_some_and(|d| d.id == device.id);
        if !same_device {
            return Err(IngestError::Mismatch(
                "the manifest is signed by another key than the upload".into(),
            ));
        }
    }
    if device.revoked_at.is_some() {
        return Err(IngestError::Revoked(device.id));
    }
    let m = &signed.document;
    if m.session_id != session || m.sequence != sequence {
        return Err(IngestError::Mismatch(format!(
            "manifest is #{} of session {}",
            m.sequence, m.session_id
        )));
    }
    if m.device_id != device.id.to_string() && m.device_id != device.key_id {
        return Err(IngestError::Mismatch(format!(
            "manifest names device {:?}",
            m.device_id
        )));
    }
    Ok((signed, device))
}

/// The receipt of a segment received `now`.
fn sign_receipt(
    vault: &Vault,
    m: &SegmentManifest,
    device: &DeviceRecord,
    sha: &str,
    now: time::OffsetDateTime,
) -> Result<SignedReceipt, IngestError> {
    SignedReceipt::sign(
        Receipt {
            kind: RECEIPT_KIND.into(),
            format: RECEIPT_FORMAT,
            segment_id: m.segment_id,
            session_id: m.session_id,
            sequence: m.sequence,
            device_id: device.id,
            manifest_sha256: sha.to_owned(),
            received_at: now,
        },
        &vault.keys().receipt,
    )
    .map_err(IngestError::Receipt)
}

/// The row of a committed segment, with its retention terms (counted from its arrival when the
/// device's clock is not believed), its search entry, and the note of a clock correction.
fn store_row(
    vault: &Vault,
    m: &SegmentManifest,
    device: &DeviceRecord,
    seq: i64,
    sha: String,
    now: time::OffsetDateTime,
    receipt: &SignedReceipt,
) -> Result<(), IngestError> {
    let times = crate::retention::counted_times(
        m.start.wall.unix_timestamp(),
        m.end.wall.unix_timestamp(),
        now.unix_timestamp(),
        vault.config().retention.clock_tolerance_days,
    );
    let row = SegmentRecord {
        segment_id: m.segment_id,
        session_id: m.session_id,
        sequence: seq,
        device_id: device.id,
        manifest_sha256: sha,
        prev_manifest_sha256: m.prev_manifest_sha256.clone(),
        last_in_session: m.last_in_session,
        recorded_at: times.start,
        received_at: now.unix_timestamp(),
        receipt: receipt.as_bytes().to_vec(),
    };
    // With its retention terms, in the row's own transaction.
    if let Err(e) = crate::retention::insert_segment(vault, device, times, &row) {
        // The lock is per session: the same segment id may have been stored at once under
        // another session. Its files stay unreferenced (never a row without media).
        if vault.store().segment_by_id(m.segment_id)?.is_some() {
            tracing::warn!(segment_id = %m.segment_id, "refused: segment id stored concurrently elsewhere");
            return Err(IngestError::Conflict(format!(
                "segment id {} is stored at another position",
                m.segment_id
            )));
        }
        return Err(e.into());
    }
    crate::search::index_segment(vault, m, device, seq);
    if times.shift != 0 {
        note_clock_correction(vault, m, device.id, times)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_traversal_and_odd_forms() {
        let s = "0b8c3c7e-5d55-4a8c-9a38-2f1b5e1c6f00";
        assert_eq!(parse_ids(s, "1").unwrap().1, 1);
        for (session, seq) in [
            ("../../etc", "1"),
            ("0b8c3c7e5d554a8c9a382f1b5e1c6f00", "1"),
            ("{0b8c3c7e-5d55-4a8c-9a38-2f1b5e1c6f0}", "1"),
            (s, "0"),
            (s, "-1"),
            (s, "+1"),
            (s, "1/../2"),
            (s, "99999999999999999999"),
            (s, ""),
        ] {
            assert!(parse_ids(session, seq).is_err(), "{session} {seq}");
        }
    }
}
