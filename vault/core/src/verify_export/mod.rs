//! Offline verification of an evidence export ([`crate::export`]): no vault, no key, only the
//! folder (and, if the checker has it from elsewhere, the vault's receipt key to pin).
//!
//! Checks: the index's signature and that it names the exported receipt key; every manifest's
//! signature, every blob's size and SHA-256 and the hash chain per session (reusing
//! `vigil_seal::verify_tree`, the spool's verifier); every receipt's signature and that it
//! names its manifest's SHA-256, session, sequence and segment id; every file the index lists
//! is there with its size and SHA-256, and nothing else is. Problems are *tampering* (exit 1)
//! or *gaps* (missing sequence numbers, a session whose end is not in the export: exit 2).
//! Media deleted by retention or redaction is neither, when the signed index records it (and a
//! signed tombstone names each redacted blob): it is listed as EXPIRED or REDACTED.

use std::collections::{BTreeMap, BTreeSet};

use std::fs;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use uuid::Uuid;
use vigil_proto::{sha256_hex, SignedManifest};
use vigil_seal::ProblemKind;

mod deleted;
mod report;

pub use report::{DeletedMedia, ExportProblem, ExportVerifyReport, ProblemClass};

use deleted::{check_deleted, excused};

use crate::export::format::{
    is_export_path, ExportIndex, IndexEnvelope, INDEX_FILE, INDEX_FORMAT, INDEX_KIND,
    RECEIPT_KEY_FILE, RECIPIENTS_FILE, SESSIONS_DIR,
};
use crate::gaps::missing_ranges;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The vault's receipt key as the checker knows it (base64); without it, the key in the
    /// export is trusted and printed for comparison.
    pub receipt_key: Option<String>,
}

/// Why verification could not run at all (findings go into the report instead).
#[derive(Debug, thiserror::Error)]
pub enum VerifyExportError {
    /// The path is not a folder.
    #[error("{0} is not an export folder")]
    NotAFolder(PathBuf),
    /// The pinned receipt key is not an Ed25519 public key in base64.
    #[error("--receipt-key is not a base64 Ed25519 public key")]
    BadPinnedKey,
    /// A folder of the export could not be listed.
    #[error("{path}: {source}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn parse_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(b64.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The receipt key to check against: the pinned one, else the exported one.
fn receipt_key(
    out: &Path,
    pinned: Option<VerifyingKey>,
    report: &mut ExportVerifyReport,
) -> Option<VerifyingKey> {
    let path = Some(RECEIPT_KEY_FILE.to_owned());
    let exported = match fs::read_to_string(out.join(RECEIPT_KEY_FILE)) {
        Ok(text) => parse_key(&text).or_else(|| {
            report.tampered(None, None, path.clone(), "not an Ed25519 public key".into());
            None
        }),
        Err(e) => {
            report.tampered(None, None, path.clone(), format!("unreadable: {e}"));
            None
        }
    };
    if let (Some(p), Some(e)) = (pinned, exported) {
        if p != e {
            report.tampered(
                None,
                None,
                path,
                "the exported receipt key is not the pinned vault key".into(),
            );
        }
    }
    pinned.or(exported)
}

fn check_index(
    out: &Path,
    key: Option<&VerifyingKey>,
    report: &mut ExportVerifyReport,
) -> Option<ExportIndex> {
    let path = Some(INDEX_FILE.to_owned());
    let fail = |report: &mut ExportVerifyReport, message: String| {
        report.tampered(None, None, path.clone(), message);
        None
    };
    let bytes = match fs::read(out.join(INDEX_FILE)) {
        Ok(b) => b,
        Err(e) => return fail(report, format!("unreadable: {e}")),
    };
    let envelope: IndexEnvelope<'_> = match serde_json::from_slice(&bytes) {
        Ok(e) => e,
        Err(e) => return fail(report, format!("not a signed index: {e}")),
    };
    let key = key?;
    if envelope.signature.alg != "ed25519"
        || parse_key(&envelope.signature.public_key) != Some(*key)
    {
        return fail(report, "not signed with the receipt key".into());
    }
    let sig: Option<[u8; 64]> = B64
        .decode(&envelope.signature.sig)
        .ok()
        .and_then(|b| b.try_into().ok());
    let signed = envelope.index.get().as_bytes();
    if sig.is_none_or(|s| key.verify(signed, &Signature::from_bytes(&s)).is_err()) {
        return fail(
            report,
            "the index's signature does not verify (edited)".into(),
        );
    }
    let index: ExportIndex = match serde_json::from_slice(signed) {
        Ok(i) => i,
        Err(e) => return fail(report, format!("malformed index: {e}")),
    };
    if index.kind != INDEX_KIND || index.format != INDEX_FORMAT {
        return fail(
            report,
            format!("kind {} format {}", index.kind, index.format),
        );
    }
    if parse_key(&index.receipt_public_key) != Some(*key) {
        return fail(report, "names another receipt key".into());
    }
    let recipients = fs::read_to_string(out.join(RECIPIENTS_FILE)).unwrap_or_default();
    if recipients
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ne(index.recording_recipients.iter().map(String::as_str))
    {
        report.tampered(
            None,
            None,
            Some(RECIPIENTS_FILE.into()),
            "differs from the recipients the index names".into(),
        );
    }
    Some(index)
}

/// Every file under `sessions/`, as `sessions/<session>/<name>`.
fn files_under(sessions: &Path) -> Result<BTreeSet<String>, VerifyExportError> {
    let mut out = BTreeSet::new();
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| VerifyExportError::Io { path, source }
    };
    let entries = match fs::read_dir(sessions) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(sessions)(e)),
    };
    for dir in entries {
        let dir = dir.map_err(io(sessions))?;
        let name = dir.file_name().to_string_lossy().into_owned();
        if !dir.path().is_dir() {
            out.insert(format!("{SESSIONS_DIR}/{name}"));
            continue;
        }
        for file in fs::read_dir(dir.path()).map_err(io(&dir.path()))? {
            let file = file.map_err(io(&dir.path()))?;
            out.insert(format!(
                "{SESSIONS_DIR}/{name}/{}",
                file.file_name().to_string_lossy()
            ));
        }
    }
    Ok(out)
}

/// The sequence numbers of the manifests present, per session folder (without an index).
fn sequences_on_disk(present: &BTreeSet<String>) -> BTreeMap<Uuid, Vec<i64>> {
    let mut out: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for rel in present {
        let mut parts = rel.split('/').skip(1);
        let (Some(session), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let seq = name
            .strip_suffix(".manifest.json")
            .and_then(|n| n.parse().ok());
        if let (Ok(session), Some(seq)) = (session.parse::<Uuid>(), seq) {
            out.entry(session).or_default().push(seq);
        }
    }
    out
}

/// The vault's receipt keys a checker accepts: the one it pinned (or the export's), then the
/// earlier ones the signed index lists.
pub(crate) struct ReceiptKeys(Vec<VerifyingKey>);

impl ReceiptKeys {
    /// Verifies a document signed by one of the keys.
    pub(crate) fn verify<D: vigil_proto::Document>(
        &self,
        bytes: &[u8],
    ) -> Result<vigil_proto::Signed<D>, String> {
        let signed = vigil_proto::Signed::<D>::verify(bytes, None).map_err(|e| e.to_string())?;
        if self.0.contains(&signed.signer) {
            Ok(signed)
        } else {
            // The refusal a single pinned key gives.
            vigil_proto::Signed::<D>::verify(bytes, Some(&self.0[0])).map_err(|e| e.to_string())
        }
    }
}

/// Checks one manifest's receipt; `rel` is the manifest's path relative to the export.
fn check_receipt(
    out: &Path,
    rel: &str,
    key: Option<&ReceiptKeys>,
    report: &mut ExportVerifyReport,
) {
    let Ok(manifest) = fs::read(out.join(rel)) else {
        return;
    };
    // A manifest that does not verify is reported by the tree check.
    let Ok(signed) = SignedManifest::verify(&manifest, None) else {
        return;
    };
    let m = &signed.document;
    let (session, seq) = (Some(m.session_id), Some(m.sequence));
    let expected_rel = format!(
        "{SESSIONS_DIR}/{}/{}",
        m.session_id,
        vigil_proto::naming::manifest_file(m.sequence)
    );
    if rel != expected_rel {
        report.tampered(
            session,
            seq,
            Some(rel.into()),
            format!("the manifest belongs at {expected_rel}"),
        );
    }
    let receipt_rel = rel.replace(".manifest.json", ".receipt.json");
    let Some(key) = key else { return };
    let bytes = match fs::read(out.join(&receipt_rel)) {
        Ok(b) => b,
        Err(_) => {
            return report.tampered(session, seq, Some(receipt_rel), "receipt missing".into())
        }
    };
    let receipt = match key.verify::<vigil_proto::receipt::Receipt>(&bytes) {
        Ok(r) => r.document,
        Err(e) => return report.tampered(session, seq, Some(receipt_rel), e),
    };
    let sha = sha256_hex(&manifest);
    if receipt.manifest_sha256 != sha {
        report.tampered(
            session,
            seq,
            Some(receipt_rel),
            format!(
                "the receipt names manifest {}, the exported manifest is {sha}",
                receipt.manifest_sha256
            ),
        );
    } else if receipt.session_id != m.session_id
        || receipt.sequence != m.sequence
        || receipt.segment_id != m.segment_id
    {
        report.tampered(
            session,
            seq,
            Some(receipt_rel),
            "the receipt names another segment".into(),
        );
    }
}

/// Compares the files with the index; returns the sequence numbers the index lists per session.
fn check_files_against_index(
    out: &Path,
    index: &ExportIndex,
    present: &BTreeSet<String>,
    report: &mut ExportVerifyReport,
) -> BTreeMap<Uuid, Vec<i64>> {
    let mut listed = BTreeSet::new();
    let mut sequences: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for seg in &index.segments {
        let (session, seq) = (Some(seg.session_id), Some(seg.sequence));
        sequences
            .entry(seg.session_id)
            .or_default()
            .push(seg.sequence as i64);
        listed.extend(seg.files.iter().map(|f| f.path.clone()));
        if seg.files.iter().all(|f| !present.contains(&f.path)) {
            report.tampered(
                session,
                seq,
                None,
                "listed in the index but its files are missing from the export (deleted)".into(),
            );
            continue;
        }
        for file in &seg.files {
            let path = Some(file.path.clone());
            if !is_export_path(&file.path, seg.session_id) {
                report.tampered(
                    session,
                    seq,
                    path,
                    "the index names a file outside the segment's session folder".into(),
                );
                continue;
            }
            match fs::read(out.join(&file.path)) {
                Err(_) => {
                    report.tampered(session, seq, path, "listed in the index but missing".into())
                }
                Ok(bytes) if bytes.len() as u64 != file.size => report.tampered(
                    session,
                    seq,
                    path,
                    format!("{} bytes, the index says {}", bytes.len(), file.size),
                ),
                Ok(bytes) if sha256_hex(&bytes) != file.sha256 => report.tampered(
                    session,
                    seq,
                    path,
                    "SHA-256 differs from the index (altered)".into(),
                ),
                Ok(_) => {}
            }
        }
    }
    for extra in present.difference(&listed) {
        report.tampered(
            None,
            None,
            Some(extra.clone()),
            "not listed in the index (added)".into(),
        );
    }
    sequences
}

/// Verifies the export in `out`; see the module documentation.
pub fn verify_export(
    out: &Path,
    options: &VerifyOptions,
) -> Result<ExportVerifyReport, VerifyExportError> {
    if !out.is_dir() {
        return Err(VerifyExportError::NotAFolder(out.to_owned()));
    }
    let pinned = match &options.receipt_key {
        Some(b64) => Some(parse_key(b64).ok_or(VerifyExportError::BadPinnedKey)?),
        None => None,
    };
    let mut report = ExportVerifyReport::default();
    let key = receipt_key(out, pinned, &mut report);
    report.receipt_public_key = key.map(|k| B64.encode(k.as_bytes()));
    report.receipt_key_pinned = pinned.is_some();
    let index = check_index(out, key.as_ref(), &mut report);

    let sessions = out.join(SESSIONS_DIR);
    let present = files_under(&sessions)?;
    let tree = if sessions.is_dir() {
        vigil_seal::verify_tree(&sessions).map_err(|source| VerifyExportError::Io {
            path: sessions.clone(),
            source,
        })?
    } else {
        vigil_seal::VerifyReport::default()
    };
    let relative = |p: &Option<PathBuf>| {
        p.as_ref()
            .and_then(|p| p.strip_prefix(out).ok())
            .map(|p| p.to_string_lossy().into_owned())
    };
    for problem in tree.unattributed.iter() {
        report.tampered(
            None,
            problem.sequence,
            relative(&problem.file),
            format!("{:?}: {}", problem.kind, problem.detail),
        );
    }
    for (session, s) in &tree.sessions {
        report.segments.insert(*session, s.segments);
        // Gaps are worked out below, from the index when there is one.
        // A blob the signed index records as deleted is checked by `check_deleted` instead.
        for p in s.problems.iter().filter(|p| {
            p.kind != ProblemKind::SequenceGap
                && !(p.kind == ProblemKind::BlobMissing
                    && excused(index.as_ref(), *session, &p.detail))
        }) {
            report.tampered(
                Some(*session),
                p.sequence,
                relative(&p.file),
                format!("{:?}: {}", p.kind, p.detail),
            );
        }
    }
    // The current key, and the earlier ones the (verified) index vouches for.
    let receipt_keys = key.map(|key| {
        let mut keys = vec![key];
        keys.extend(
            index
                .iter()
                .flat_map(|i| &i.earlier_receipt_keys)
                .filter_map(|k| parse_key(k)),
        );
        ReceiptKeys(keys)
    });
    for rel in present.iter().filter(|p| p.ends_with(".manifest.json")) {
        check_receipt(out, rel, receipt_keys.as_ref(), &mut report);
    }

    if let Some(index) = &index {
        check_deleted(out, index, receipt_keys.as_ref(), &mut report);
    }
    let sequences = match &index {
        Some(index) => check_files_against_index(out, index, &present, &mut report),
        None => sequences_on_disk(&present),
    };
    for (session, mut seqs) in sequences {
        seqs.sort_unstable();
        let state = index
            .as_ref()
            .and_then(|i| i.sessions.iter().find(|s| s.session_id == session));
        let gap = |message: String| ExportProblem {
            class: ProblemClass::Gap,
            session: Some(session),
            sequence: None,
            path: None,
            message,
        };
        for (a, b) in missing_ranges(&seqs) {
            let which = if a == b {
                format!("segment #{a} is")
            } else {
                format!("segments #{a}-#{b} are")
            };
            let why = state.map_or("no index says why", |s| s.explain_gap(a, b));
            report
                .problems
                .push(gap(format!("{which} not in the export: {why}")));
        }
        let last = seqs.last().copied().unwrap_or(0);
        let closed = tree
            .sessions
            .get(&session)
            .is_some_and(|r| r.closed && r.last_sequence as i64 == last);
        if !closed {
            let why = state.map_or("later segments may be missing".into(), |s| {
                s.explain_open_end(last)
            });
            report.problems.push(gap(format!(
                "no segment marks the end of the session (last exported is #{last}): {why}"
            )));
        }
    }
    report.index = index;
    Ok(report)
}
