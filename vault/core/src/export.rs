//! Evidence export: the stored segments of a selection, byte for byte as the agents sent them,
//! with their signed receipts and a signed index, in a folder anyone can check offline
//! (`vigil-vault verify OUT`, [`crate::verify_export`]).
//!
//! ```text
//! OUT/index.json                          signed index (see [`ExportIndex`])
//! OUT/receipt.pub                         the vault's receipt-signing key (Ed25519, base64)
//! OUT/recording.pub                       the recording recipient(s) the blobs are sealed to
//! OUT/sessions/<session>/NNNNNN.manifest.json, .screen.age, .voice.age   as stored
//! OUT/sessions/<session>/NNNNNN.receipt.json                             as first returned
//! OUT/sessions/<session>/NNNNNN.tombstone.json            signed tombstone of a redacted segment
//! ```
//!
//! A blob deleted by retention or redaction is absent; the index records it ([`deleted`]).
//!
//! The session folders have the agent spool's layout, so `vigil_seal::verify_tree` checks
//! them. The index is signed with the receipt key like a receipt (its own `kind`, so neither
//! can pass for the other): it makes the selection's completeness checkable, since removing a
//! segment from the export means editing the index. Blobs stay sealed: an export holds no key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};

use serde_json::value::RawValue;
use uuid::Uuid;
use vigil_proto::{sha256_hex, SignedManifest};

use crate::audit::{self, ACTION_EXPORT};
use crate::Vault;
use vigil_vault_store::blobs::BlobError;
use vigil_vault_store::metadata::{SegmentRecord, StoreError};

mod deleted;
pub mod format;

pub use format::{
    DeletedBlob, ExportIndex, IndexedFile, IndexedSegment, Selection, SessionAtExport, INDEX_FILE,
    INDEX_FORMAT, INDEX_KIND, RECEIPT_KEY_FILE, RECIPIENTS_FILE, SESSIONS_DIR,
};
use format::{IndexEnvelope, IndexSignature};
fn sign_index(index: &ExportIndex, key: &SigningKey) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_string(index)?;
    let sig = key.sign(json.as_bytes());
    let raw = RawValue::from_string(json)?;
    let mut bytes = serde_json::to_vec_pretty(&IndexEnvelope {
        index: &raw,
        signature: IndexSignature {
            alg: "ed25519".into(),
            public_key: B64.encode(key.verifying_key().as_bytes()),
            sig: B64.encode(sig.to_bytes()),
        },
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Exported segments.
    pub segments: usize,
    /// Sessions they belong to.
    pub sessions: usize,
    /// Bytes of media, manifests and receipts written.
    pub bytes: u64,
    /// The export's audit record.
    pub audit_seq: i64,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No reason was stated.
    #[error("a reason is required to export recordings (--reason)")]
    MissingReason,
    /// The output folder exists and holds something.
    #[error("{0} is not empty: an export is written into a new or empty folder only")]
    OutNotEmpty(PathBuf),
    /// No stored segment matches the selection.
    #[error("no stored segment matches {0}")]
    NothingSelected(String),
    /// The gap report of an exported session failed.
    #[error(transparent)]
    Gaps(#[from] crate::gaps::GapsError),
    /// A stored manifest differs from what the metadata recorded at ingest.
    #[error("stored manifest of segment #{sequence} of session {session} does not match its receipt: {detail}")]
    StoredCorrupt {
        /// The session.
        session: Uuid,
        /// The sequence number.
        sequence: i64,
        /// What differs.
        detail: String,
    },
    /// The audit record could not be written; nothing was exported.
    #[error("cannot write the audit record, nothing exported: {0}")]
    Audit(#[source] StoreError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// A file of the export could not be written.
    #[error("{path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The index could not be serialized.
    #[error("index: {0}")]
    Index(#[from] serde_json::Error),
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create_new(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|source| ExportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Creates `out`, or accepts it when it is an empty folder.
fn prepare_out(out: &Path) -> Result<(), ExportError> {
    let io = |source| ExportError::Write {
        path: out.to_owned(),
        source,
    };
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ExportError::OutNotEmpty(out.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(out).map_err(io),
        Err(e) if out.exists() => Err(if out.is_dir() {
            io(e)
        } else {
            ExportError::OutNotEmpty(out.to_owned())
        }),
        Err(e) => Err(io(e)),
    }
}

/// Copies one segment's files into `dir` and returns its index entry.
fn export_segment(
    vault: &Vault,
    record: &SegmentRecord,
    dir: &Path,
) -> Result<IndexedSegment, ExportError> {
    let session = record.session_id;
    let sequence = u64::try_from(record.sequence).unwrap_or_default();
    let corrupt = |detail: String| ExportError::StoredCorrupt {
        session,
        sequence: record.sequence,
        detail,
    };
    let manifest_name = vigil_proto::naming::manifest_file(sequence);
    let manifest = vault.blobs().get(session, &manifest_name)?;
    if sha256_hex(&manifest) != record.manifest_sha256 {
        return Err(corrupt("manifest SHA-256 differs".into()));
    }
    // Verified at ingest; parsed again only to learn the blob names.
    let signed = SignedManifest::verify(&manifest, None).map_err(|e| corrupt(e.to_string()))?;
    let (deleted, tombstone) = deleted::deleted_of(vault, record, &signed)?;
    let mut files = vec![(manifest_name, manifest)];
    for blob in &signed.document.blobs {
        // A blob missing without a deletion record is an error (NotFound), as before.
        if !deleted.iter().any(|d| d.file == blob.file) {
            files.push((blob.file.clone(), vault.blobs().get(session, &blob.file)?));
        }
    }
    files.push((
        vigil_proto::naming::receipt_file(sequence),
        record.receipt.clone(),
    ));
    if let Some(t) = tombstone {
        files.push((vigil_proto::naming::tombstone_file(sequence), t.tombstone));
    }

    let mut indexed = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        write_file(&dir.join(&name), &bytes)?;
        indexed.push(IndexedFile {
            path: format!("{SESSIONS_DIR}/{session}/{name}"),
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        });
    }
    Ok(IndexedSegment {
        session_id: session,
        sequence,
        segment_id: record.segment_id,
        device_id: record.device_id,
        recorded_at: signed.document.start.wall,
        manifest_sha256: record.manifest_sha256.clone(),
        files: indexed,
        deleted,
    })
}

/// Exports the segments `selection` matches into `out` (new or empty), for `actor` with a
/// stated `reason`. The export is audited before any byte is written; the signed index is
/// written last, so a folder without `index.json` is an unfinished export.
pub fn export(
    vault: &Vault,
    out: &Path,
    selection: &Selection,
    actor: &str,
    reason: &str,
) -> Result<ExportReport, ExportError> {
    let reason = audit::stated_reason(Some(reason)).ok_or(ExportError::MissingReason)?;
    prepare_out(out)?;
    let records = vault.store().segments(&selection.filter())?;
    if records.is_empty() {
        return Err(ExportError::NothingSelected(selection.describe()));
    }
    let audit = audit::record(
        vault.store(),
        actor,
        ACTION_EXPORT,
        Some(selection.describe()),
        Some(reason.clone()),
    )
    .map_err(ExportError::Audit)?;

    let mut segments = Vec::with_capacity(records.len());
    let mut sessions = 0;
    for record in &records {
        let dir = out.join(SESSIONS_DIR).join(record.session_id.to_string());
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(|source| ExportError::Write {
                path: dir.clone(),
                source,
            })?;
            sessions += 1;
        }
        segments.push(export_segment(vault, record, &dir)?);
    }
    let bytes = segments
        .iter()
        .flat_map(|s| s.files.iter().map(|f| f.size))
        .sum();

    let receipt_public_key = vault.receipt_public_key();
    let recording_recipients = vault.recipients();
    write_file(
        &out.join(RECEIPT_KEY_FILE),
        format!("{receipt_public_key}\n").as_bytes(),
    )?;
    write_file(
        &out.join(RECIPIENTS_FILE),
        format!("{}\n", recording_recipients.join("\n")).as_bytes(),
    )?;
    let count = segments.len();
    let mut session_states = Vec::new();
    for record in &records {
        if session_states
            .last()
            .is_some_and(|s: &SessionAtExport| s.session_id == record.session_id)
        {
            continue;
        }
        for g in crate::gaps::gaps(vault.store(), Some(record.session_id))? {
            session_states.push(SessionAtExport {
                session_id: g.session,
                last_sequence: g.last_sequence,
                closed: g.closed,
                missing: g.missing,
                in_transit: g.in_transit,
                lost: g.lost,
                produced: g.produced,
            });
        }
    }
    let index = ExportIndex {
        kind: INDEX_KIND.into(),
        format: INDEX_FORMAT,
        exported_at: crate::clock::now(),
        exported_by: actor.to_owned(),
        reason,
        audit_seq: audit.seq,
        selection: selection.clone(),
        receipt_public_key,
        recording_recipients,
        earlier_receipt_keys: vault
            .keys()
            .history
            .retired_receipt_keys
            .iter()
            .map(|k| k.public_key.clone())
            .collect(),
        segments,
        sessions: session_states,
    };
    write_file(
        &out.join(INDEX_FILE),
        &sign_index(&index, &vault.keys().receipt)?,
    )?;
    Ok(ExportReport {
        segments: count,
        sessions,
        bytes,
        audit_seq: audit.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use format::is_export_path;

    #[test]
    fn selections_describe_themselves_and_filter() {
        assert_eq!(Selection::default().describe(), "all");
        let s = Selection {
            session: Some(Uuid::nil()),
            from: Some(
                "2026-11-29T08:00:00Z"
                    .parse::<crate::when::When>()
                    .unwrap()
                    .datetime(),
            ),
            ..Selection::default()
        };
        assert_eq!(
            s.describe(),
            format!("session={} from=2026-11-29T08:00:00Z", Uuid::nil())
        );
        assert_eq!(s.filter().from, Some(1_795_939_200));
    }

    #[test]
    fn out_must_be_new_or_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("a/b");
        prepare_out(&fresh).unwrap();
        prepare_out(&fresh).unwrap();
        fs::write(fresh.join("x"), b"x").unwrap();
        assert!(matches!(
            prepare_out(&fresh),
            Err(ExportError::OutNotEmpty(_))
        ));
        assert!(matches!(
            prepare_out(&fresh.join("x")),
            Err(ExportError::OutNotEmpty(_))
        ));
    }

    #[test]
    fn index_paths_stay_in_their_session_folder() {
        let s = Uuid::from_u128(7);
        assert!(is_export_path(&format!("sessions/{s}/000001.voice.age"), s));
        for bad in [
            format!("sessions/{s}/../../etc/passwd"),
            format!("sessions/{s}/a/b"),
            format!("sessions/{}/000001.voice.age", Uuid::from_u128(8)),
            "/etc/passwd".to_owned(),
            format!("sessions/{s}/.hidden"),
            format!("sessions/{s}/"),
        ] {
            assert!(!is_export_path(&bad, s), "{bad}");
        }
    }

    #[test]
    fn gaps_are_explained_from_what_the_vault_knew() {
        let state = SessionAtExport {
            session_id: Uuid::nil(),
            last_sequence: 9,
            closed: false,
            missing: vec![(2, 2), (4, 6)],
            in_transit: vec![(6, 6)],
            lost: vec![(4, 5)],
            produced: Some(11),
        };
        assert_eq!(state.explain_gap(2, 2), "never received by the vault");
        assert!(state.explain_gap(4, 5).contains("reported lost"));
        assert!(state.explain_gap(6, 6).contains("in transit"));
        assert!(state.explain_gap(1, 2).starts_with("partly"));
        assert_eq!(
            state.explain_gap(7, 8),
            "held by the vault; outside the selection"
        );
        assert!(state
            .explain_open_end(9)
            .contains("the agent reported #11 sealed"));
        let closed = SessionAtExport {
            closed: true,
            ..state
        };
        assert!(closed.explain_open_end(5).contains("outside the selection"));
    }
}
