//! Sweeping orphans (issue 13 §11): ingest commits a segment's files, then writes its row; a
//! crash between the two leaves files no row refers to, which no retention, hold or export
//! ever sees, and a crash between staging and commit leaves staged files. The sweep removes
//! both once they are an hour old (an upload in progress is younger), audited before anything
//! goes (`blobs.orphans_removed`, with the files named). Rows are never touched, and files of a
//! stored segment never go here (retention and redaction delete those, with tombstones).

use vigil_vault_store::blobs::BlobError;
use vigil_vault_store::metadata::StoreError;

use crate::audit_anchor::VAULT_FOLDER;
use crate::Vault;

/// Files younger than this are left alone (an ingest may be between commit and row).
pub const MIN_AGE_SECS: i64 = 3600;
/// The audit action.
pub const ACTION_ORPHANS_REMOVED: &str = "blobs.orphans_removed";
/// The audit action of a sweep that found too many to be a crash's.
pub const ACTION_ORPHANS_REFUSED: &str = "blobs.orphans_refused";
/// More files without a row than this in one sweep are not a crash's leftovers.
pub const MAX_PER_SWEEP: usize = 300;

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Committed files of segments without a row.
    pub files: Vec<String>,
    /// Staged files never committed.
    pub staged: usize,
}

/// Why a sweep failed (what it removed before stays removed and audited).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrphanError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

/// The sequence number of a segment file's name (`000042.voice.age` → 42).
fn sequence_of(name: &str) -> Option<i64> {
    let (digits, rest) = name.split_once('.')?;
    let known = ["manifest.json", "screen.age", "voice.age"].contains(&rest);
    (known && digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Removes, as of `now` (Unix seconds), the orphaned files older than [`MIN_AGE_SECS`], audited
/// as `actor`.
pub fn sweep_orphans(vault: &Vault, now: i64, actor: &str) -> Result<OrphanReport, OrphanError> {
    let before = now - MIN_AGE_SECS;
    let mut orphans = Vec::new();
    for session in vault.blobs().sessions()? {
        if session == VAULT_FOLDER {
            continue;
        }
        for (name, written) in vault.blobs().written(session)? {
            let Some(seq) = sequence_of(&name) else {
                continue;
            };
            if written < before && vault.store().segment(session, seq)?.is_none() {
                orphans.push((session, name));
            }
        }
    }
    let mut report = OrphanReport::default();
    if orphans.len() > MAX_PER_SWEEP {
        // More than a crash leaves: a metadata database restored from an old backup, or the
        // wrong one configured. Deleting would destroy recordings; refuse and say so.
        crate::audit::record(
            vault.store(),
            actor,
            ACTION_ORPHANS_REFUSED,
            Some(format!("{} file(s)", orphans.len())),
            Some(format!(
                "more files without a row than a crash leaves (at most {MAX_PER_SWEEP}): is the \
                 metadata database the right one?"
            )),
        )?;
        tracing::error!(
            files = orphans.len(),
            "orphan sweep refused: too many files without a row"
        );
        return Ok(report);
    }
    if !orphans.is_empty() {
        let listed: Vec<String> = orphans.iter().map(|(s, n)| format!("{s}/{n}")).collect();
        let shown: Vec<&str> = listed.iter().take(50).map(String::as_str).collect();
        crate::audit::record(
            vault.store(),
            actor,
            ACTION_ORPHANS_REMOVED,
            Some(format!("{} file(s)", listed.len())),
            Some(format!(
                "files of segments that have no row (a crash between commit and row): {}{}",
                shown.join(", "),
                if listed.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            )),
        )?;
        for (session, name) in &orphans {
            // Under the session's ingest lock, and only if still without a row: an upload of
            // the same segment may have stored it since the listing.
            let _ingest = vault.session_lock(*session);
            let seq = sequence_of(name).unwrap_or_default();
            if vault.store().segment(*session, seq)?.is_none() {
                vault.blobs().delete(*session, name)?;
            }
        }
        report.files = listed;
    }
    report.staged = vault.blobs().sweep_staging(before)?;
    if !report.files.is_empty() || report.staged > 0 {
        tracing::warn!(
            files = report.files.len(),
            staged = report.staged,
            "orphaned files removed"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_segment_files_have_a_sequence() {
        assert_eq!(sequence_of("000042.voice.age"), Some(42));
        assert_eq!(sequence_of("000042.manifest.json"), Some(42));
        assert_eq!(sequence_of("1234567.screen.age"), Some(1_234_567));
        for other in [
            "000042.tombstone.json",
            "audit-anchor-000000000001.json",
            "42.voice.age",
            "x.voice.age",
        ] {
            assert_eq!(sequence_of(other), None, "{other}");
        }
    }
}
