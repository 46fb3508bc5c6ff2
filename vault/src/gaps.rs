//! Gaps per session: sequence numbers below the highest stored one that the vault does not hold.
//!
//! Without the agent's heartbeat (still to come) the vault cannot know about segments after the
//! highest one it holds, nor tell "still in transit" from "lost"; `closed` says whether the
//! session's last segment arrived.

use std::fmt;

use uuid::Uuid;

use crate::store::{MetadataStore, StoreError};

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
}

impl SessionGaps {
    /// The missing sequence numbers as text (`2, 5-7`), or `none`.
    pub fn missing_text(&self) -> String {
        if self.missing.is_empty() {
            return "none".into();
        }
        self.missing
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
        )
    }
}

/// Why the gap report failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    Ok(store
        .session_sequences(session)?
        .into_iter()
        .map(|(session, s)| SessionGaps {
            session,
            stored: s.sequences.len(),
            last_sequence: s.sequences.last().copied().unwrap_or(0),
            closed: s.closed,
            missing: missing_ranges(&s.sequences),
        })
        .collect())
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
        };
        assert_eq!(g.missing_text(), "1-3, 6");
    }
}
