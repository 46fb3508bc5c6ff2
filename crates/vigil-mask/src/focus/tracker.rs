//! Turns raw focus signals into focus changes. Accessibility APIs repeat themselves (GTK3
//! sends each AT-SPI focus change twice) and report focus leaving objects that never held it.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::collections::VecDeque;

/// Repeats of an object's last signal within this window are dropped.
const DEDUP_WINDOW_NS: u64 = 50_000_000;

/// What one focus signal means for the holder of focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Gained,
    Lost,
    Ignore,
}

/// Turns focus signals into focus changes: drops a repeat of an object's last signal within
/// [`DEDUP_WINDOW_NS`], and unfocus signals of objects that do not hold focus.
#[derive(Debug)]
pub(super) struct FocusTracker<K> {
    focused: Option<K>,
    /// The last signal of each object seen within the window.
    recent: VecDeque<(K, bool, u64)>,
}

impl<K> Default for FocusTracker<K> {
    fn default() -> Self {
        Self {
            focused: None,
            recent: VecDeque::new(),
        }
    }
}

impl<K: PartialEq + Clone> FocusTracker<K> {
    pub(super) fn on_signal(&mut self, object: &K, focused: bool, at_ns: u64) -> Change {
        self.recent
            .retain(|(_, _, t)| at_ns.saturating_sub(*t) < DEDUP_WINDOW_NS);
        let repeat = self
            .recent
            .iter()
            .any(|(k, f, _)| k == object && *f == focused);
        // Only the latest signal per object is kept: after "gain, lose", a new gain counts.
        self.recent.retain(|(k, _, _)| k != object);
        self.recent.push_back((object.clone(), focused, at_ns));
        if repeat {
            return Change::Ignore;
        }
        if focused {
            self.focused = Some(object.clone());
            Change::Gained
        } else if self.focused.as_ref() == Some(object) {
            self.focused = None;
            Change::Lost
        } else {
            Change::Ignore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn repeated_signals_are_reported_once() {
        let mut t = FocusTracker::default();
        assert_eq!(t.on_signal(&"card", true, 0), Change::Gained);
        assert_eq!(t.on_signal(&"card", true, 3 * MS), Change::Ignore);
        assert_eq!(t.on_signal(&"card", false, 100 * MS), Change::Lost);
        assert_eq!(t.on_signal(&"name", true, 101 * MS), Change::Gained);
        assert_eq!(t.on_signal(&"card", false, 104 * MS), Change::Ignore);
        assert_eq!(t.on_signal(&"name", true, 105 * MS), Change::Ignore);
    }

    #[test]
    fn refocus_after_the_window_or_a_loss_counts() {
        let mut t = FocusTracker::default();
        assert_eq!(t.on_signal(&"card", true, 0), Change::Gained);
        assert_eq!(t.on_signal(&"card", true, 60 * MS), Change::Gained);
        // A quick loss and regain must not leave the field unmasked.
        assert_eq!(t.on_signal(&"card", false, 61 * MS), Change::Lost);
        assert_eq!(t.on_signal(&"card", true, 62 * MS), Change::Gained);
    }

    #[test]
    fn losing_focus_elsewhere_does_not_end_the_current_focus() {
        let mut t = FocusTracker::default();
        assert_eq!(t.on_signal(&"name", true, 0), Change::Gained);
        assert_eq!(t.on_signal(&"card", false, MS), Change::Ignore);
        assert_eq!(t.on_signal(&"name", false, 2 * MS), Change::Lost);
    }
}
