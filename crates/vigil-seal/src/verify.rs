//! Offline verification of a spool or an export: signatures, blob hashes, the hash chain and
//! sequence gaps, per session. Reads files; never decrypts.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use vigil_proto::{sha256_hex, SignedManifest};

/// What is wrong with a segment or a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemKind {
    /// The manifest cannot be read or parsed.
    MalformedManifest,
    /// The manifest's signature does not verify.
    BadSignature,
    /// A manifest of the session is signed by another device key.
    SignerChanged,
    /// A blob named by the manifest is missing.
    BlobMissing,
    /// A blob's size differs from the manifest.
    BlobSizeMismatch,
    /// A blob's SHA-256 differs from the manifest.
    BlobHashMismatch,
    /// The manifest does not chain to its predecessor.
    ChainBroken,
    /// Sequence numbers are missing from the session.
    SequenceGap,
    /// Two manifests claim the same sequence number.
    DuplicateSequence,
}

/// One problem, naming the segment (or range) and the reason.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The kind of problem.
    pub kind: ProblemKind,
    /// The manifest file, when one segment is concerned.
    pub file: Option<PathBuf>,
    /// The sequence number(s) concerned.
    pub sequence: Option<u64>,
    /// What exactly is wrong.
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.kind)?;
        if let Some(seq) = self.sequence {
            write!(f, " segment #{seq}")?;
        }
        if let Some(file) = &self.file {
            write!(f, " ({})", file.display())?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The verification result of one session.
#[derive(Debug, Clone, Default)]
pub struct SessionReport {
    /// Segments whose manifest verified.
    pub segments: u64,
    /// Highest sequence number seen.
    pub last_sequence: u64,
    /// Whether the last segment says the session ended cleanly.
    pub closed: bool,
    /// Everything wrong with the session.
    pub problems: Vec<Problem>,
}

/// The verification result of a tree.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Per session, ordered by id.
    pub sessions: BTreeMap<Uuid, SessionReport>,
    /// Manifests that could not be attributed to a session (unparseable or unsigned).
    pub unattributed: Vec<Problem>,
}

impl VerifyReport {
    /// True when nothing is wrong anywhere.
    pub fn is_clean(&self) -> bool {
        self.unattributed.is_empty() && self.sessions.values().all(|s| s.problems.is_empty())
    }
    /// Every problem, attributed or not.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.unattributed
            .iter()
            .chain(self.sessions.values().flat_map(|s| s.problems.iter()))
    }
}

fn manifests_under(root: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            manifests_under(&path, out)?;
        } else if path.to_string_lossy().ends_with(".manifest.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Verifies every manifest under `root` and the blobs beside them.
pub fn verify_tree(root: &Path) -> std::io::Result<VerifyReport> {
    let mut files = Vec::new();
    manifests_under(root, &mut files)?;
    files.sort();
    let mut report = VerifyReport::default();
    let mut by_session: BTreeMap<Uuid, Vec<(PathBuf, SignedManifest)>> = BTreeMap::new();
    for file in files {
        let bytes = fs::read(&file)?;
        match SignedManifest::verify(&bytes, None) {
            Ok(signed) => by_session
                .entry(signed.document.session_id)
                .or_default()
                .push((file, signed)),
            Err(e) => {
                let kind = match e.kind() {
                    vigil_proto::SignedErrorKind::BadSignature => ProblemKind::BadSignature,
                    _ => ProblemKind::MalformedManifest,
                };
                report.unattributed.push(Problem {
                    kind,
                    sequence: sequence_from_name(&file),
                    file: Some(file),
                    detail: e.to_string(),
                });
            }
        }
    }
    for (session, mut segments) in by_session {
        segments.sort_by_key(|(_, s)| s.document.sequence);
        report.sessions.insert(session, verify_session(&segments));
    }
    Ok(report)
}

fn sequence_from_name(file: &Path) -> Option<u64> {
    file.file_name()?.to_str()?.split('.').next()?.parse().ok()
}

fn verify_session(segments: &[(PathBuf, SignedManifest)]) -> SessionReport {
    let mut report = SessionReport::default();
    let signer = segments.first().map(|(_, s)| s.signer);
    let mut expected_seq = 1u64;
    let mut previous: Option<&SignedManifest> = None;
    for (file, signed) in segments {
        let m = &signed.document;
        let problem = |kind, detail: String| Problem {
            kind,
            file: Some(file.clone()),
            sequence: Some(m.sequence),
            detail,
        };
        if Some(signed.signer) != signer {
            report.problems.push(problem(
                ProblemKind::SignerChanged,
                "signed by another device key".into(),
            ));
        }
        if m.sequence < expected_seq {
            report.problems.push(problem(
                ProblemKind::DuplicateSequence,
                "sequence number seen twice".into(),
            ));
        } else if m.sequence > expected_seq {
            report.problems.push(Problem {
                kind: ProblemKind::SequenceGap,
                file: None,
                sequence: Some(expected_seq),
                detail: format!(
                    "segments #{}..=#{} are missing",
                    expected_seq,
                    m.sequence - 1
                ),
            });
        }
        // The chain is checked only between neighbours: across a gap it cannot be.
        let chained_prev = previous.filter(|p| p.document.sequence + 1 == m.sequence);
        match (chained_prev, &m.prev_manifest_sha256) {
            (Some(p), Some(h)) if &p.digest().0 != h => report.problems.push(problem(
                ProblemKind::ChainBroken,
                format!("expects predecessor {h}, found {}", p.digest().0),
            )),
            (Some(_), None) => report.problems.push(problem(
                ProblemKind::ChainBroken,
                "has no predecessor hash".into(),
            )),
            (None, Some(_)) if m.sequence == 1 => report.problems.push(problem(
                ProblemKind::ChainBroken,
                "first segment names a predecessor".into(),
            )),
            _ => {}
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        for blob in &m.blobs {
            // Blob names come from signed manifests, but refuse anything but a plain file name.
            if blob.file.contains(['/', '\\']) || blob.file.starts_with('.') {
                report.problems.push(problem(
                    ProblemKind::MalformedManifest,
                    format!("blob name {:?}", blob.file),
                ));
                continue;
            }
            match fs::read(dir.join(&blob.file)) {
                Err(_) => report
                    .problems
                    .push(problem(ProblemKind::BlobMissing, blob.file.clone())),
                Ok(bytes) if bytes.len() as u64 != blob.size => report.problems.push(problem(
                    ProblemKind::BlobSizeMismatch,
                    format!(
                        "{}: {} bytes, manifest says {}",
                        blob.file,
                        bytes.len(),
                        blob.size
                    ),
                )),
                Ok(bytes) if sha256_hex(&bytes) != blob.sha256 => report
                    .problems
                    .push(problem(ProblemKind::BlobHashMismatch, blob.file.clone())),
                Ok(_) => {}
            }
        }
        report.segments += 1;
        report.last_sequence = report.last_sequence.max(m.sequence);
        report.closed = m.last_in_session;
        expected_seq = expected_seq.max(m.sequence + 1);
        previous = Some(signed);
    }
    report
}
