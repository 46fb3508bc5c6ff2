//! Browsers without Vigil's extension: the accessibility bus sees focus in a browser, but only
//! the extension can see card data in its pages (text, fields without labels, frames of other
//! origins). While the extension that field masking expects is not attached (the browser just
//! started and its pages painted before the extension's host connected, or it is not installed
//! in this browser), focus in a browser masks the whole screen; so does the host attaching,
//! as far back as the delay line still holds media. Either ends when a page of the attached
//! extension settles (at most 5 s after it attached), or focus moves to another application.

use crate::command::{MaskCommand, SpanKeys};
use crate::{FieldInfo, TriggerSource};

/// Application names of browsers (lower case, matched as parts of the name the accessibility
/// bus gives: "Chromium", "Google Chrome", "chrome.exe", "Microsoft Edge", "Firefox").
const BROWSERS: [&str; 8] = [
    "chrom", "msedge", "edge", "firefox", "brave", "opera", "vivaldi", "safari",
];

fn is_browser(field: &FieldInfo) -> bool {
    field.app.as_deref().is_some_and(|app| {
        let app = app.to_lowercase();
        BROWSERS.iter().any(|b| app.contains(b))
    })
}

/// How long an attached extension may stay silent about the page before the mask ends.
const QUIET_MAX_NS: u64 = 5_000_000_000;

/// How far back attaching masks until the delay line is known: as far as the agent dates an
/// extension report back.
const ATTACH_LOOKBACK_NS: u64 = 500_000_000;

/// The rule's state.
#[derive(Debug, Default)]
pub(crate) struct UnwatchedBrowser {
    /// Whether field masking relies on the extension (off: the rule does nothing).
    expected: bool,
    /// Whether the extension's host is attached now, and since when.
    attached: bool,
    attached_ns: u64,
    /// The open whole-screen span, and its start.
    open: Option<(u64, u64)>,
    /// How far back attaching masks (0: [`ATTACH_LOOKBACK_NS`]).
    lookback_ns: u64,
}

impl UnwatchedBrowser {
    pub(crate) fn expect_extension(&mut self) {
        self.expected = true;
    }

    /// Attaching masks as far back as the delay line still holds media (a page may have
    /// painted any time before its host connected).
    pub(crate) fn set_lookback(&mut self, delay_ns: u64) {
        self.lookback_ns = delay_ns;
    }

    /// Opens the rule's whole-screen span from `start_ns`.
    fn open_whole(
        &mut self,
        start_ns: u64,
        reason: &str,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        let key = keys.next();
        out.push(MaskCommand::open_full(
            key,
            start_ns,
            reason.into(),
            None,
            TriggerSource::Watchdog,
        ));
        self.open = Some((key, start_ns));
    }

    /// The extension's host attached or went away. Attaching masks the whole screen from as
    /// far back as reports may be dated until the extension first reports: a browser that
    /// just started paints its pages before its host connects, and the pages' first reports
    /// wait for that connection (seen: a stored card shown 130–300 ms before the oldest
    /// stamp the agent accepts on its report).
    pub(crate) fn extension_health(
        &mut self,
        at_ns: u64,
        healthy: bool,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        if healthy && !self.attached {
            self.attached_ns = at_ns;
            if self.expected && self.open.is_none() {
                let lookback = if self.lookback_ns > 0 {
                    self.lookback_ns
                } else {
                    ATTACH_LOOKBACK_NS
                };
                self.open_whole(
                    at_ns.saturating_sub(lookback),
                    "browser extension attaching: its pages are not reported yet",
                    keys,
                    out,
                );
            }
        }
        self.attached = healthy;
    }

    /// An attached extension that says nothing for [`QUIET_MAX_NS`] shows a page it cannot
    /// run in (a new tab page, the browser's settings): no page data there to mask.
    pub(crate) fn tick(&mut self, now_ns: u64, out: &mut Vec<MaskCommand>) {
        let end_ns = self.attached_ns + QUIET_MAX_NS;
        if self.attached && now_ns > end_ns {
            if let Some((key, start_ns)) = self.open.take() {
                out.push(MaskCommand::Close {
                    key,
                    end_ns: end_ns.max(start_ns),
                });
            }
        }
    }

    /// A page of the attached extension settled: it has reported what it shows (a focus or
    /// a page report alone has not: an injected script reports the page before its first
    /// text scan).
    pub(crate) fn extension_settled(&mut self, at_ns: u64, out: &mut Vec<MaskCommand>) {
        if !self.attached {
            return;
        }
        if let Some((key, start_ns)) = self.open.take() {
            out.push(MaskCommand::Close {
                key,
                end_ns: at_ns.max(start_ns),
            });
        }
    }

    /// An accessibility focus change: into a browser the extension does not watch, or out of
    /// browsers.
    pub(crate) fn focus(
        &mut self,
        at_ns: u64,
        field: &FieldInfo,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        if !self.expected {
            return;
        }
        match (is_browser(field), self.open) {
            (true, None) if !self.attached => self.open_whole(
                at_ns,
                "browser without Vigil's extension: its pages cannot be checked",
                keys,
                out,
            ),
            (false, Some((key, _))) => {
                self.open = None;
                out.push(MaskCommand::Close {
                    key,
                    end_ns: at_ns + crate::held::PAGE_SETTLE_NS,
                });
            }
            _ => {}
        }
    }
}
