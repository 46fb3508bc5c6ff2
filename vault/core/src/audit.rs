//! The audit log from the command line: recording who did what and why, listing the log, and
//! re-checking its hash chain ([`AuditRecord::chain_hash`]) record by record.
//!
//! The database refuses edits and deletions of audit rows (triggers), so the chain check is the
//! second line: it finds a row rewritten behind the database's back (a file edited offline).
//! Dropping the newest rows leaves a valid, shorter chain; that needs an anchor outside the
//! database to detect: [`Anchor`] (`vigil-vault audit verify --anchor FILE`, a file kept away
//! from the data folder) remembers the head seen last, and the next check demands it again.

use std::fmt;

use vigil_vault_store::metadata::{AuditDraft, AuditRecord, MetadataStore, StoreError};

/// Audit action: the recording identity was printed for offline decryption.
pub const ACTION_EXPORT_RECORDING_IDENTITY: &str = "keys.export_recording_identity";
/// Audit action: a device was revoked.
pub const ACTION_DEVICE_REVOKE: &str = "device.revoke";
/// Audit action: a device enrolled (actor `device:<id>`).
pub const ACTION_DEVICE_ENROLL: &str = "device.enroll";
/// Audit action: an enrollment token was created.
pub const ACTION_TOKEN_CREATE: &str = "token.create";
/// Audit action: segments were exported as evidence.
pub const ACTION_EXPORT: &str = "export";
/// Audit action: someone read the audit log (target: the filter).
pub const ACTION_AUDIT_READ: &str = "audit.read";
/// Audit action: someone read the agents' live state.
pub const ACTION_AGENTS_READ: &str = "agents.read";

/// How many records are read per query while walking the log.
const PAGE: usize = 1000;

/// The actor of a command run from a shell: `cli:<OS user>` from the environment, else
/// `cli:uid:<n>` (Unix) or `cli:unknown`. It names who ran the command as the OS reports it;
/// whoever can write the data folder could claim anything, which the chain cannot prevent.
pub fn cli_actor() -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|u| !u.trim().is_empty()))
        .map(|u| u.trim().to_owned())
        .or_else(process_uid)
        .unwrap_or_else(|| "unknown".to_owned());
    format!("cli:{user}")
}

#[cfg(target_os = "linux")]
fn process_uid() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's real user.
    std::fs::metadata("/proc/self")
        .ok()
        .map(|m| format!("uid:{}", m.uid()))
}

#[cfg(not(target_os = "linux"))]
fn process_uid() -> Option<String> {
    None
}

/// A stated reason with surrounding blanks removed, or `None` when nothing was said.
pub fn stated_reason(reason: Option<&str>) -> Option<String> {
    reason
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
}

/// Text from a caller made safe for a record's target: control characters (which could forge
/// lines in the tab-separated listing) become `?`, and it is cut to `max` characters.
pub fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Where the work being audited was asked for: the client's address and user agent of an
/// HTTP request, or `local` and the command's name on the vault's host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The client's address (`local` for a command line).
    pub client_addr: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
}

/// The longest user agent kept.
const USER_AGENT_CHARS: usize = 200;

impl Origin {
    /// An HTTP client: its address and `User-Agent` (made printable and cut).
    pub fn client(addr: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Self {
        Self {
            client_addr: addr.map(|a| a.to_string()),
            user_agent: user_agent.map(|ua| printable(ua, USER_AGENT_CHARS)),
        }
    }

    /// A command run on the vault's host.
    pub fn command_line() -> Self {
        Self {
            client_addr: Some("local".into()),
            user_agent: Some(format!("vigil-vault/{} cli", env!("CARGO_PKG_VERSION"))),
        }
    }
}

thread_local! {
    static ORIGIN: std::cell::RefCell<Option<Origin>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work` with every audit record it appends on this thread stamped with `origin` (the
/// HTTP layer wraps each request's blocking work, the command line its command): no call
/// between the request and the record has to carry it.
pub fn with_origin<T>(origin: Option<Origin>, work: impl FnOnce() -> T) -> T {
    let before = ORIGIN.with(|o| o.replace(origin));
    // Restored even if `work` panics, so a pooled thread never lends a request's origin on.
    struct Restore(Option<Origin>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ORIGIN.with(|o| *o.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(before);
    work()
}

/// The origin set by [`with_origin`] on this thread, if any.
pub fn current_origin() -> Option<Origin> {
    ORIGIN.with(|o| o.borrow().clone())
}

/// Appends one event, stamped now and with the current [`Origin`].
pub fn record(
    store: &dyn MetadataStore,
    actor: &str,
    action: &str,
    target: Option<String>,
    reason: Option<String>,
) -> Result<AuditRecord, StoreError> {
    let origin = current_origin().unwrap_or_default();
    store.append_audit(&AuditDraft {
        at: crate::clock::now().unix_timestamp(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target,
        reason,
        client_addr: origin.client_addr,
        user_agent: origin.user_agent,
    })
}

/// Why the audit log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every audit record, oldest first.
pub fn records(store: &dyn MetadataStore) -> Result<Vec<AuditRecord>, AuditError> {
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |r: &AuditRecord| r.seq);
        let page = store.audit_records(after, PAGE)?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// The last position `p` such that every record up to `p` meets `holds`, for a property that
/// holds for a prefix of the log (0: not even the first). Found by doubling then halving, so a
/// long log is not read from its start.
pub(crate) fn last_seq_where(
    store: &dyn MetadataStore,
    holds: impl Fn(&AuditRecord) -> bool,
) -> Result<i64, StoreError> {
    let mut high = 1i64;
    while store.audit_records(high, 1)?.first().is_some_and(&holds) {
        high = high.saturating_mul(2);
    }
    let mut low = 0i64;
    while low < high {
        let mid = low + (high - low) / 2;
        match store.audit_records(mid, 1)?.first() {
            Some(r) if holds(r) => low = r.seq,
            _ => high = mid,
        }
    }
    Ok(low)
}

/// One place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The record's position.
    pub seq: i64,
    /// What is wrong with it.
    pub detail: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "record {}: {}", self.seq, self.detail)
    }
}

/// Re-checks the chain of `records` (the whole log, oldest first): positions count from 1
/// without holes, each record names its predecessor's hash, and each hash is recomputed from
/// the record's fields. Returns every break (empty: the chain holds).
pub fn verify_chain(records: &[AuditRecord]) -> Vec<ChainBreak> {
    let mut breaks = Vec::new();
    let mut prev_hash = AuditRecord::GENESIS;
    for (i, record) in records.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        let mut broken = |detail: String| {
            breaks.push(ChainBreak {
                seq: record.seq,
                detail,
            })
        };
        if record.seq != expected_seq {
            broken(format!("expected position {expected_seq}"));
        }
        if record.prev_sha256 != prev_hash {
            broken(format!(
                "names predecessor {}, but the previous record's hash is {prev_hash}",
                record.prev_sha256
            ));
        }
        let recomputed = AuditRecord::chain_hash(record.seq, &record.prev_sha256, &record.draft);
        if recomputed != record.sha256 {
            broken("its fields do not hash to its stored hash (edited)".to_owned());
        }
        prev_hash = &record.sha256;
    }
    breaks
}

/// The head of the log as last verified (position and hash), kept outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The head's position.
    pub seq: i64,
    /// The head's hash.
    pub sha256: String,
}

/// An anchor file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an audit anchor (expected \"<seq> <sha256>\"): {0:?}")]
pub struct AnchorParseError(pub String);

impl Anchor {
    /// The head of `records` (none for an empty log).
    pub fn head(records: &[AuditRecord]) -> Option<Self> {
        records.last().map(|r| Self {
            seq: r.seq,
            sha256: r.sha256.clone(),
        })
    }

    /// Parses `<seq> <sha256>`.
    pub fn parse(text: &str) -> Result<Self, AnchorParseError> {
        let bad = || AnchorParseError(text.chars().take(100).collect());
        let mut parts = text.split_whitespace();
        let seq = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let sha256 = parts
            .next()
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(bad)?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            seq,
            sha256: sha256.to_owned(),
        })
    }

    /// `<seq> <sha256>\n`.
    pub fn to_text(&self) -> String {
        format!("{} {}\n", self.seq, self.sha256)
    }

    /// Checks that the log still holds this head, unchanged: a log cut back below it, or a
    /// head rewritten with its successors, is a break.
    pub fn check(&self, records: &[AuditRecord]) -> Option<ChainBreak> {
        let detail = match records.iter().find(|r| r.seq == self.seq) {
            None => format!(
                "the anchored head is missing: the log ends at {} (records were deleted)",
                records.last().map_or(0, |r| r.seq)
            ),
            Some(r) if r.sha256 != self.sha256 => format!(
                "hash {} differs from the anchored {} (the log was rewritten)",
                r.sha256, self.sha256
            ),
            Some(_) => return None,
        };
        Some(ChainBreak {
            seq: self.seq,
            detail,
        })
    }
}

/// One line per record: `seq  time  actor  action  target  reason  client  user-agent`.
pub fn format_record(record: &AuditRecord) -> String {
    let d = &record.draft;
    let at = time::OffsetDateTime::from_unix_timestamp(d.at)
        .map(crate::clock::rfc3339)
        .unwrap_or_else(|_| d.at.to_string());
    format!(
        "{}\t{at}\t{}\t{}\t{}\t{}\t{}\t{}",
        record.seq,
        d.actor,
        d.action,
        d.target.as_deref().unwrap_or("-"),
        d.reason.as_deref().unwrap_or("-"),
        d.client_addr.as_deref().unwrap_or("-"),
        d.user_agent.as_deref().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for seq in 1..=n {
            let prev = out
                .last()
                .map_or(AuditRecord::GENESIS.to_owned(), |r| r.sha256.clone());
            let draft = AuditDraft {
                at: 1_700_000_000 + seq,
                actor: "cli:alice".into(),
                action: ACTION_DEVICE_REVOKE.into(),
                target: Some(format!("device-{seq}")),
                reason: Some("left the company".into()),
                ..Default::default()
            };
            let sha256 = AuditRecord::chain_hash(seq, &prev, &draft);
            out.push(AuditRecord {
                seq,
                draft,
                prev_sha256: prev,
                sha256,
            });
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert!(verify_chain(&chain(5)).is_empty());
        assert!(verify_chain(&[]).is_empty());
    }

    #[test]
    fn edits_removals_and_reorders_break_the_chain() {
        let mut edited = chain(4);
        edited[1].draft.reason = Some("routine".into());
        let breaks = verify_chain(&edited);
        assert_eq!(breaks.len(), 1, "{breaks:?}");
        assert_eq!(breaks[0].seq, 2);
        assert!(breaks[0].detail.contains("edited"));

        let mut removed = chain(4);
        removed.remove(1);
        let breaks = verify_chain(&removed);
        assert!(breaks.iter().any(|b| b.seq == 3), "{breaks:?}");

        let mut swapped = chain(3);
        swapped.swap(0, 1);
        assert!(!verify_chain(&swapped).is_empty());
    }

    #[test]
    fn an_anchor_catches_deleted_or_rewritten_heads() {
        let log = chain(5);
        let anchor = Anchor::head(&log).unwrap();
        assert_eq!(Anchor::parse(&anchor.to_text()).unwrap(), anchor);
        assert!(Anchor::parse("5").is_err());
        assert!(Anchor::parse("x 00").is_err());
        assert_eq!(anchor.check(&log), None);
        // Appending more keeps the anchor valid.
        assert_eq!(Anchor::head(&chain(4)).unwrap().check(&log), None);
        // Cutting the newest records is caught although the shorter chain verifies.
        let cut = &log[..3];
        assert!(verify_chain(cut).is_empty());
        let broken = anchor.check(cut).unwrap();
        assert_eq!(broken.seq, 5);
        assert!(broken.detail.contains("deleted"));
        // So is a rewritten tail (re-chained consistently).
        let mut other = chain(5);
        other[4].draft.reason = Some("rewritten".into());
        other[4].sha256 = AuditRecord::chain_hash(5, &other[4].prev_sha256, &other[4].draft);
        assert!(verify_chain(&other).is_empty());
        assert!(anchor.check(&other).unwrap().detail.contains("rewritten"));
    }

    #[test]
    fn reasons_are_trimmed_and_blank_ones_are_none() {
        assert_eq!(stated_reason(Some("  case 42 ")), Some("case 42".into()));
        assert_eq!(stated_reason(Some("   ")), None);
        assert_eq!(stated_reason(None), None);
        assert!(cli_actor().starts_with("cli:"));
    }
}
