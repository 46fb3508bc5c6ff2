//! What the offline check of an export found: problems (tampering or gaps) and media the index
//! says the vault deleted.

use std::collections::BTreeMap;
use std::fmt;

use uuid::Uuid;
use vigil_vault_store::metadata::lifecycle::DELETED_REDACTED;

use crate::export::format::ExportIndex;

/// Whether a problem means the export was altered or only that it is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemClass {
    /// A file was changed, added or removed after the export, or a signature fails.
    Tampered,
    /// Sequence numbers are missing, or a session's end is not in the export.
    Gap,
}

/// One finding, naming what it concerns.
#[derive(Debug, Clone)]
pub struct ExportProblem {
    /// Tampering or gap.
    pub class: ProblemClass,
    /// The session, when known.
    pub session: Option<Uuid>,
    /// The segment's sequence number, when one segment is concerned.
    pub sequence: Option<u64>,
    /// The file, relative to the export folder.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ExportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.class {
            ProblemClass::Tampered => "TAMPERED",
            ProblemClass::Gap => "GAP",
        })?;
        if let Some(s) = self.session {
            write!(f, " session {s}")?;
        }
        if let Some(n) = self.sequence {
            write!(f, " #{n}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " ({p})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What verification found.
#[derive(Debug, Default)]
pub struct ExportVerifyReport {
    /// The receipt key everything was checked against (base64).
    pub receipt_public_key: Option<String>,
    /// Whether that key was given by the checker rather than read from the export.
    pub receipt_key_pinned: bool,
    /// The verified index, when it verified.
    pub index: Option<ExportIndex>,
    /// Segments whose manifest verified, per session.
    pub segments: BTreeMap<Uuid, u64>,
    /// Every finding.
    pub problems: Vec<ExportProblem>,
    /// Media the index records as deleted (retention, redaction), each explained and checked.
    pub deleted: Vec<DeletedMedia>,
}

impl ExportVerifyReport {
    /// Some file was altered, added or removed, or a signature fails.
    pub fn is_tampered(&self) -> bool {
        self.problems
            .iter()
            .any(|p| p.class == ProblemClass::Tampered)
    }

    /// Some session has missing segments or no end.
    pub fn has_gaps(&self) -> bool {
        self.problems.iter().any(|p| p.class == ProblemClass::Gap)
    }

    /// 0 when everything verifies, 1 on tampering, 2 on gaps (unless `allow_gaps`).
    pub fn exit_code(&self, allow_gaps: bool) -> i32 {
        if self.is_tampered() {
            1
        } else if self.has_gaps() && !allow_gaps {
            2
        } else {
            0
        }
    }

    pub(crate) fn tampered(
        &mut self,
        session: Option<Uuid>,
        seq: Option<u64>,
        path: Option<String>,
        message: String,
    ) {
        self.problems.push(ExportProblem {
            class: ProblemClass::Tampered,
            session,
            sequence: seq,
            path,
            message,
        });
    }
}

impl fmt::Display for ExportVerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(index) = &self.index {
            writeln!(
                f,
                "export of {} by {} at {} (audit record {}), reason: {}",
                index.selection.describe(),
                index.exported_by,
                crate::clock::rfc3339(index.exported_at),
                index.audit_seq,
                index.reason
            )?;
        }
        if let Some(key) = &self.receipt_public_key {
            let source = if self.receipt_key_pinned {
                "pinned"
            } else {
                "from the export: compare it with the vault's keys/receipt.pub, or pin it with --receipt-key"
            };
            writeln!(f, "receipt key: {key} ({source})")?;
        }
        let total: u64 = self.segments.values().sum();
        writeln!(
            f,
            "{total} segment(s) with valid signatures in {} session(s)",
            self.segments.len()
        )?;
        for deleted in &self.deleted {
            writeln!(f, "{deleted}")?;
        }
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        let verdict = if self.is_tampered() {
            "FAILED: the export was altered or does not verify"
        } else if self.has_gaps() {
            "INCOMPLETE: everything present verifies, but segments are missing"
        } else {
            "OK: every signature, hash, receipt and chain link verifies"
        };
        writeln!(f, "{verdict}")
    }
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
            crate::clock::rfc3339(self.deleted_at)
        )
    }
}
