//! What the capture callbacks share with the screen thread: where captures go, the stop flag,
//! and the desktop layout last reported.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::{Capture, Clock, MonitorRect, SourceEventKind};

/// What the capture callbacks need from the screen thread.
pub(super) struct Sink {
    pub(super) clock: Clock,
    pub(super) tx: Sender<Capture>,
    pub(super) stop: Arc<AtomicBool>,
    /// Last layout sent in an event, kept across sessions to report geometry changes.
    pub(super) reported: Rc<RefCell<Option<ReportedDesktop>>>,
    /// Whether the current session got as far as DeviceOpened.
    pub(super) opened: Rc<Cell<bool>>,
}

pub(super) fn event(clock: &Clock, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, "screen", kind, detail)
}

/// The layout last reported in an event; kept across portal sessions to report changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ReportedDesktop {
    /// Sorted: a new session may list the same monitors in another order.
    pub(super) rects: Vec<MonitorRect>,
    pub(super) size: (u32, u32),
}

impl ReportedDesktop {
    pub(super) fn new(rects: &[MonitorRect], size: (u32, u32)) -> Self {
        let mut rects = rects.to_vec();
        rects.sort_unstable_by_key(|r| (r.x, r.y, r.width, r.height));
        Self { rects, size }
    }
}
