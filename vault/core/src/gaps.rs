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

fn to_ranges(sorted: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &n in sorted {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == n => *end = n,
            _ => out.push((n, n)),
        }
    }
    out
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

/// The gap report of one session, or of every session.
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
        let last = s.sequences.last().copied().unwrap_or(0);
        let upto = report.as_ref().map_or(last, |r| r.produced.max(last));
        let held: std::collections::BTreeSet<i64> = s.sequences.iter().copied().collect();
        let missing: Vec<i64> = (1..=upto).filter(|n| !held.contains(n)).collect();
        let (in_transit, lost): (Vec<i64>, Vec<i64>) = match &report {
            Some(r) => missing.iter().partition(|n| r.pending.contains(n)),
            None => (Vec::new(), Vec::new()),
        };
        out.push(SessionGaps {
            session: id,
            stored: s.sequences.len(),
            last_sequence: last,
            closed: s.closed
                || report
                    .as_ref()
                    .is_some_and(|r| r.closed && held.contains(&r.produced)),
            missing: to_ranges(&missing),
            reported: report.is_some(),
            produced: report.as_ref().map(|r| r.produced),
            in_transit: to_ranges(&in_transit),
            lost: to_ranges(&lost),
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
        assert_eq!(to_ranges(&[1, 2, 3, 6, 8, 9]), vec![(1, 3), (6, 6), (8, 9)]);
        assert_eq!(g.missing_text(), "1-3, 6");
    }
}
