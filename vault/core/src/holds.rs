//! Legal holds (brief §6): a case freezes sessions, devices (agents) or time ranges, without a
//! cap on how many; while any active hold covers a segment, neither retention nor anything
//! else deletes its media. Placing and releasing a hold are audited (`hold.add`,
//! `hold.release`). A hold is placed before its audit record is written (a failed audit leaves
//! the recordings protected); a release is audited before it takes effect.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use crate::audit::{self, stated_reason};
use vigil_vault_store::metadata::lifecycle::{
    HoldRecord, HoldRelease, HoldScope, ReleaseOutcome, SegmentLifecycle,
};
use vigil_vault_store::metadata::{MetadataStore, StoreError};

/// Audit action: a legal hold was placed.
pub const ACTION_HOLD_ADD: &str = "hold.add";
/// Audit action: a legal hold was released.
pub const ACTION_HOLD_RELEASE: &str = "hold.release";

/// Why a hold could not be placed.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// No case name.
    #[error("a hold needs a case name (--case)")]
    MissingCase,
    /// No reason.
    #[error("a hold needs a reason (--reason)")]
    MissingReason,
    /// Nothing to hold.
    #[error("a hold needs at least one session, device or time range")]
    NoScope,
    /// A range that ends before it starts.
    #[error("time range ends ({to}) before it starts ({from})")]
    BadRange {
        /// Start, Unix seconds.
        from: i64,
        /// End, Unix seconds.
        to: i64,
    },
    /// The hold is placed, but its audit record could not be written.
    #[error("hold {id} is in place, but its audit record could not be written: {source}")]
    Audit {
        /// The hold.
        id: Uuid,
        /// The store's error.
        source: StoreError,
    },
    /// The metadata store failed; no hold was placed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a hold could not be released.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No reason.
    #[error("releasing a hold needs a reason (--reason)")]
    MissingReason,
    /// No such hold.
    #[error("no hold {0}")]
    Unknown(Uuid),
    /// Released before.
    #[error("hold {0} was already released")]
    AlreadyReleased(Uuid),
    /// The audit record could not be written; the hold stays in place.
    #[error("cannot write the audit record, the hold stays in place: {0}")]
    Audit(#[source] StoreError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe_scopes(scopes: &[HoldScope]) -> String {
    let count = |f: fn(&HoldScope) -> bool| scopes.iter().filter(|s| f(s)).count();
    format!(
        "{} session(s), {} device(s), {} range(s)",
        count(|s| matches!(s, HoldScope::Session(_))),
        count(|s| matches!(s, HoldScope::Device { .. })),
        count(|s| matches!(s, HoldScope::Range { .. })),
    )
}

/// Places a hold for `case` over `scopes` (no cap), by `actor`, for `reason`.
pub fn add_hold(
    store: &dyn MetadataStore,
    case: &str,
    scopes: Vec<HoldScope>,
    actor: &str,
    reason: &str,
) -> Result<HoldRecord, HoldError> {
    let case = stated_reason(Some(case)).ok_or(HoldError::MissingCase)?;
    let reason = stated_reason(Some(reason)).ok_or(HoldError::MissingReason)?;
    if scopes.is_empty() {
        return Err(HoldError::NoScope);
    }
    for scope in &scopes {
        let (from, to) = match scope {
            HoldScope::Range { from, to } => (Some(*from), Some(*to)),
            HoldScope::Device { from, to, .. } => (*from, *to),
            HoldScope::Session(_) => (None, None),
        };
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(HoldError::BadRange { from, to });
            }
        }
    }
    let hold = HoldRecord {
        id: Uuid::new_v4(),
        case_name: case,
        scopes,
        created_by: actor.to_owned(),
        reason,
        created_at: crate::clock::now().unix_timestamp(),
        released: None,
    };
    store.insert_hold(&hold)?;
    audit::record(
        store,
        actor,
        ACTION_HOLD_ADD,
        Some(format!(
            "hold {} case {:?}: {}",
            hold.id,
            hold.case_name,
            describe_scopes(&hold.scopes)
        )),
        Some(hold.reason.clone()),
    )
    .map_err(|source| HoldError::Audit {
        id: hold.id,
        source,
    })?;
    tracing::info!(hold = %hold.id, scopes = hold.scopes.len(), "legal hold placed");
    Ok(hold)
}

/// Holds, oldest first: the active ones, or all.
pub fn list_holds(
    store: &dyn MetadataStore,
    include_released: bool,
) -> Result<Vec<HoldRecord>, StoreError> {
    store.holds(include_released)
}

/// Releases hold `id`, by `actor`, for `reason` (audited first).
pub fn release_hold(
    store: &dyn MetadataStore,
    id: Uuid,
    actor: &str,
    reason: &str,
) -> Result<HoldRecord, ReleaseError> {
    let reason = stated_reason(Some(reason)).ok_or(ReleaseError::MissingReason)?;
    let Some(hold) = store.holds(true)?.into_iter().find(|h| h.id == id) else {
        return Err(ReleaseError::Unknown(id));
    };
    if hold.released.is_some() {
        return Err(ReleaseError::AlreadyReleased(id));
    }
    audit::record(
        store,
        actor,
        ACTION_HOLD_RELEASE,
        Some(format!("hold {id} case {:?}", hold.case_name)),
        Some(reason.clone()),
    )
    .map_err(ReleaseError::Audit)?;
    let release = HoldRelease {
        at: crate::clock::now().unix_timestamp(),
        by: actor.to_owned(),
        reason,
    };
    match store.release_hold(id, &release)? {
        ReleaseOutcome::Released(hold) => Ok(hold),
        ReleaseOutcome::AlreadyReleased(_) => Err(ReleaseError::AlreadyReleased(id)),
        ReleaseOutcome::Unknown => Err(ReleaseError::Unknown(id)),
    }
}

/// One text line per hold, for the CLI.
pub fn format_hold(hold: &HoldRecord) -> String {
    let status = match &hold.released {
        None => "active".to_owned(),
        Some(r) => format!("released at {} by {} ({})", r.at, r.by, r.reason),
    };
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
        hold.id,
        hold.case_name,
        describe_scopes(&hold.scopes),
        hold.created_by,
        hold.created_at,
        hold.reason,
        status
    )
}

/// A device scope's optional range and its hold.
type DeviceScope = (Option<i64>, Option<i64>, Uuid);

/// One scope as text (`session ID`, `device ID [from, to)`, `range [from, to)`; RFC 3339).
pub fn format_scope(scope: &HoldScope) -> String {
    let t = |s: Option<i64>| {
        s.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .map_or_else(|| "…".to_owned(), crate::clock::rfc3339)
    };
    match scope {
        HoldScope::Session(s) => format!("session {s}"),
        HoldScope::Device { device, from, to } if from.is_none() && to.is_none() => {
            format!("device {device}")
        }
        HoldScope::Device { device, from, to } => {
            format!("device {device} [{}, {})", t(*from), t(*to))
        }
        HoldScope::Range { from, to } => format!("range [{}, {})", t(Some(*from)), t(Some(*to))),
    }
}

/// The active holds, indexed for quick checks of many segments.
#[derive(Debug, Default)]
pub struct ActiveHolds {
    sessions: HashMap<Uuid, Uuid>,
    devices: HashMap<Uuid, Vec<DeviceScope>>,
    ranges: Vec<(i64, i64, Uuid)>,
    ids: HashSet<Uuid>,
}

fn overlaps(start: i64, end: i64, from: Option<i64>, to: Option<i64>) -> bool {
    let end = end.max(start);
    from.is_none_or(|f| end > f || start >= f) && to.is_none_or(|t| start < t)
}

impl ActiveHolds {
    /// Loads every active hold.
    pub fn load(store: &dyn MetadataStore) -> Result<Self, StoreError> {
        let mut out = Self::default();
        for hold in store.holds(false)? {
            out.ids.insert(hold.id);
            for scope in hold.scopes {
                match scope {
                    HoldScope::Session(s) => {
                        out.sessions.insert(s, hold.id);
                    }
                    HoldScope::Device { device, from, to } => {
                        out.devices
                            .entry(device)
                            .or_default()
                            .push((from, to, hold.id));
                    }
                    HoldScope::Range { from, to } => out.ranges.push((from, to, hold.id)),
                }
            }
        }
        Ok(out)
    }

    /// How many holds are active.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no hold is active.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of an active hold covering the segment, if any.
    pub fn covering(&self, seg: &SegmentLifecycle) -> Option<Uuid> {
        let s = &seg.segment;
        let (start, end) = (s.recorded_at, seg.ended_at());
        if let Some(id) = self.sessions.get(&s.session_id) {
            return Some(*id);
        }
        if let Some(found) = self.devices.get(&s.device_id).and_then(|scopes| {
            scopes
                .iter()
                .find(|(from, to, _)| overlaps(start, end, *from, *to))
        }) {
            return Some(found.2);
        }
        self.ranges
            .iter()
            .find(|(from, to, _)| overlaps(start, end, Some(*from), Some(*to)))
            .map(|r| r.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_vault_store::metadata::lifecycle::RetentionTerms;
    use vigil_vault_store::metadata::SegmentRecord;

    fn seg(session: Uuid, device: Uuid, start: i64) -> SegmentLifecycle {
        SegmentLifecycle {
            segment: SegmentRecord {
                segment_id: Uuid::new_v4(),
                session_id: session,
                sequence: 1,
                device_id: device,
                manifest_sha256: String::new(),
                prev_manifest_sha256: None,
                last_in_session: false,
                recorded_at: start,
                received_at: start,
                receipt: Vec::new(),
            },
            terms: Some(RetentionTerms {
                policy_version: 0,
                ended_at: start + 10,
                voice_expires_at: 0,
                screen_expires_at: 0,
            }),
            voice_deleted: None,
            screen_deleted: None,
        }
    }

    #[test]
    fn holds_cover_by_session_device_and_range() {
        let (s1, s2, d1, d2) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let (h1, h2, h3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut holds = ActiveHolds::default();
        holds.sessions.insert(s1, h1);
        holds.devices.insert(d1, vec![(Some(100), Some(200), h2)]);
        holds.ranges.push((1000, 2000, h3));
        holds.ids.extend([h1, h2, h3]);
        assert_eq!(holds.len(), 3);
        assert_eq!(holds.covering(&seg(s1, d2, 5000)), Some(h1));
        assert_eq!(holds.covering(&seg(s2, d1, 95)), Some(h2), "ends inside");
        assert_eq!(holds.covering(&seg(s2, d1, 200)), None, "starts at the end");
        assert_eq!(holds.covering(&seg(s2, d2, 150)), None, "other device");
        assert_eq!(holds.covering(&seg(s2, d2, 1995)), Some(h3));
        assert_eq!(holds.covering(&seg(s2, d2, 990)), None, "ends at the start");
        assert!(ActiveHolds::default().covering(&seg(s1, d1, 0)).is_none());
    }

    #[test]
    fn ranges_overlap_half_open() {
        assert!(overlaps(10, 20, Some(15), Some(30)));
        assert!(overlaps(10, 20, Some(0), Some(11)));
        assert!(!overlaps(10, 20, Some(20), Some(30)));
        assert!(!overlaps(10, 20, Some(0), Some(10)));
        assert!(overlaps(10, 20, None, None));
        assert!(overlaps(10, 10, Some(10), Some(11)));
    }
}
