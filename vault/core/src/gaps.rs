//! Gaps per session: sequence numbers the vault does not hold, up to the highest one either
//! stored or reported produced by the agent's heartbeat ([`crate::heartbeat`]). A missing number
//! the agent still holds is *in transit*; one it no longer holds (or never sealed, e.g. the
//! segment being recorded when the agent was killed) is *lost*. Without a heartbeat the vault
//! cannot tell the two apart (`reported` is false) and knows nothing after its highest segment.

use std::fmt;

use uuid::Uuid;

use vigil_vault_store::metadata::{MetadataStore, StoreError};

/// The gap report of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionGaps {
    /// The session.
    pub session: Uuid,
    /// How many segments are stored.
    pub stored: usize,
    /// The highest stored sequence number.
    pub last_sequence: i64,
    /// Whether the segment marked last of the session is stored.
    pub closed: bool,
    /// Missing sequence numbers, as inclusive ranges, ascending.
    pub missing: Vec<(i64, i64)>,
    /// The agent reported on this session.
    pub reported: bool,
    /// The highest sequence number the agent reported sealed.
    pub produced: Option<i64>,
    /// Missing numbers the agent still holds (in transit).
    pub in_transit: Vec<(i64, i64)>,
    /// Missing numbers the agent does not hold: lost (empty when not reported).
    pub lost: Vec<(i64, i64)>,
}

/// Ranges as text (`2, 5-7`), or `none`.
pub fn ranges_text(ranges: &[(i64, i64)]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl SessionGaps {
    /// The missing sequence numbers as text (`2, 5-7`), or `none`.
    pub fn missing_text(&self) -> String {
        ranges_text(&self.missing)
    }
}

impl fmt::Display for SessionGaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stored={} last={} closed={} missing={}",
            self.session,
            self.stored,
            self.last_sequence,
            if self.closed { "yes" } else { "no" },
            self.missing_text()
        )?;
        match self.produced {
            Some(produced) => write!(
                f,
                " produced={produced} in_transit={} lost={}",
                ranges_text(&self.in_transit),
                ranges_text(&self.lost)
            ),
            None => write!(f, " (no agent report)"),
        }
    }
}

/// Why the gap report failed.
#[derive(Debug, thiserror::Error)]
pub enum GapsError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Missing numbers in `1..=max(sorted)`, as inclusive ranges. `sorted` is ascending.
pub fn missing_ranges(sorted: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut expected = 1;
    for &seq in sorted {
        if seq > expected {
            out.push((expected, seq - 1));
        }
        expected = expected.max(seq + 1);
    }
    out
}

/// Inclusive ranges of sequence numbers.
type Range = (i64, i64);

/// How far ahead of what the vault stores for a session a device may claim to be, in sequence
/// numbers (about 115 days of 10-s segments). Heartbeats and uploads beyond it are refused, so
/// no number a device sends can make a report large.
pub const MAX_AHEAD: i64 = 1_000_000;

/// Whether `claimed` is further ahead of what `session` stores than [`MAX_AHEAD`]: `Some(last
/// stored)` when it is. A number below [`MAX_AHEAD`] needs no query (the common case).
pub fn beyond_reach(
    store: &dyn MetadataStore,
    session: Uuid,
    claimed: i64,
) -> Result<Option<i64>, StoreError> {
    if claimed <= MAX_AHEAD {
        return Ok(None);
    }
    let last = store
        .session_sequences(Some(session))?
        .get(&session)
        .and_then(|s| s.sequences.iter().max().copied())
        .unwrap_or(0);
    Ok((claimed - last > MAX_AHEAD).then_some(last))
}

/// `ranges` (ascending, disjoint) split by `marked` (ascending): the parts made of marked
/// numbers, and the rest. Works on ranges, never on every number, so its cost follows the
/// number of ranges and marks, not their size.
fn split_ranges(ranges: &[Range], marked: &[i64]) -> (Vec<Range>, Vec<Range>) {
    let (mut hit, mut rest) = (Vec::new(), Vec::new());
    for &(from, to) in ranges {
        let first = marked.partition_point(|&m| m < from);
        let last = marked.partition_point(|&m| m <= to);
        let mut cursor = from;
        for &m in &marked[first..last] {
            if m > cursor {
                rest.push((cursor, m - 1));
            }
            match hit.last_mut() {
                Some((_, end)) if *end + 1 == m => *end = m,
                _ => hit.push((m, m)),
            }
            cursor = m + 1;
        }
        if cursor <= to {
            rest.push((cursor, to));
        }
    }
    (hit, rest)
}

/// The gap report of one session, or of every session. Every figure is computed on ranges:
/// its cost follows the number of stored segments and reported pending ones, whatever the
/// sequence numbers claimed.
pub fn gaps(
    store: &dyn MetadataStore,
    session: Option<Uuid>,
) -> Result<Vec<SessionGaps>, GapsError> {
    let stored = store.session_sequences(session)?;
    let mut reports = store.session_reports(session)?;
    let mut out = Vec::new();
    let sessions: std::collections::BTreeSet<Uuid> =
        stored.keys().chain(reports.keys()).copied().collect();
    for id in sessions {
        let s = stored.get(&id).cloned().unwrap_or_default();
        let report = reports.remove(&id);
        let mut held = s.sequences.clone();
        held.sort_unstable();
        held.dedup();
        let last = held.last().copied().unwrap_or(0);
        let upto = report.as_ref().map_or(last, |r| r.produced.max(last));
        let mut missing = missing_ranges(&held);
        if upto > last {
            missing.push((last + 1, upto));
        }
        let (in_transit, lost) = match &report {
            Some(r) => {
                let mut pending = r.pending.clone();
                pending.sort_unstable();
                pending.dedup();
                split_ranges(&missing, &pending)
            }
            None => (Vec::new(), Vec::new()),
        };
        out.push(SessionGaps {
            session: id,
            stored: held.len(),
            last_sequence: last,
            closed: s.closed
                || report
                    .as_ref()
                    .is_some_and(|r| r.closed && held.binary_search(&r.produced).is_ok()),
            missing,
            reported: report.is_some(),
            produced: report.as_ref().map(|r| r.produced),
            in_transit,
            lost,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_cover_every_hole() {
        assert_eq!(missing_ranges(&[]), vec![]);
        assert_eq!(missing_ranges(&[1, 2, 3]), vec![]);
        assert_eq!(missing_ranges(&[1, 3]), vec![(2, 2)]);
        assert_eq!(missing_ranges(&[4, 5, 9]), vec![(1, 3), (6, 8)]);
        let g = SessionGaps {
            session: Uuid::nil(),
            stored: 3,
            last_sequence: 9,
            closed: false,
            missing: vec![(1, 3), (6, 6)],
            reported: false,
            produced: None,
            in_transit: vec![],
            lost: vec![],
        };
        assert_eq!(g.missing_text(), "1-3, 6");
    }

    #[test]
    fn ranges_split_by_marks_without_enumerating() {
        assert_eq!(
            split_ranges(&[(1, 3), (6, 8)], &[2, 6, 7, 20]),
            (vec![(2, 2), (6, 7)], vec![(1, 1), (3, 3), (8, 8)])
        );
        assert_eq!(split_ranges(&[(5, 9)], &[]), (vec![], vec![(5, 9)]));
        // Four billion missing numbers cost two ranges, not four billion steps.
        let (hit, rest) = split_ranges(&[(2, 4_000_000_000)], &[3, 3_999_999_999]);
        assert_eq!(hit, vec![(3, 3), (3_999_999_999, 3_999_999_999)]);
        assert_eq!(
            rest,
            vec![(2, 2), (4, 3_999_999_998), (4_000_000_000, 4_000_000_000)]
        );
    }
}
