//! ScreenCaptureKit capture of every display as one picture of the desktop: one stream per
//! display at its native pixel size, painted at its place (see `displays.rs`) into a shared
//! canvas, sent at most `fps` times a second and only when something changed. The display
//! layout is polled: when a display comes, goes, moves or changes resolution, every stream is
//! rebuilt and the change is reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use super::completion::shareable_content;
use super::displays::{capturable_displays, monitor_infos};
use super::streams::{DisplayPlace, RunningDesktop, StreamEnd};
use crate::stoppable::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, ScreenConfig, SourceEventKind,
};

const RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    if capturable_displays(&*shareable_content()?).is_empty() {
        return Err(CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            "no display to capture",
        ));
    }
    Ok(())
}

/// Every display, at the place in pixels the capture paints it.
pub(crate) fn list_screens(_config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    Ok(monitor_infos(&capturable_displays(&*shareable_content()?)))
}

fn event(clock: &Clock, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, "screen", kind, detail)
}

/// The layout last reported, to report only real changes after a restart.
struct ReportedLayout {
    places: Vec<DisplayPlace>,
    size: (u32, u32),
}

fn count_displays(n: usize) -> String {
    match n {
        1 => "1 display".to_string(),
        n => format!("{n} displays"),
    }
}

/// Opens the screen source's first report: the desktop size and where each display sits.
fn describe_opened(places: &[DisplayPlace], size: (u32, u32)) -> String {
    let displays: Vec<String> = places
        .iter()
        .map(|p| {
            let r = p.rect;
            format!(
                "display {} {}x{} at {},{}",
                p.id, r.width, r.height, r.x, r.y
            )
        })
        .collect();
    format!(
        "{}, desktop {}x{}: {}",
        count_displays(places.len()),
        size.0,
        size.1,
        displays.join("; ")
    )
}

/// Sends DeviceOpened for the first layout, GeometryChanged when it differs from the last.
fn report_layout(
    clock: &Clock,
    tx: &Sender<Capture>,
    reported: Option<&ReportedLayout>,
    now: &ReportedLayout,
) {
    match reported {
        None => {
            let detail = describe_opened(&now.places, now.size);
            tracing::info!(%detail, "screen capture started");
            let _ = tx.send(event(clock, SourceEventKind::DeviceOpened, detail));
        }
        Some(old) if old.places != now.places => {
            let (old_size, size) = (old.size, now.size);
            let detail = format!(
                "{}x{} -> {}x{}, {}",
                old_size.0,
                old_size.1,
                size.0,
                size.1,
                count_displays(now.places.len())
            );
            tracing::info!(%detail, "screen geometry changed");
            let _ = tx.send(event(clock, SourceEventKind::GeometryChanged, detail));
        }
        Some(_) => {}
    }
}

/// The screen thread: (re)opens the streams, follows display changes, retries failures.
pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    let mut reported: Option<ReportedLayout> = None;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let mut running = match RunningDesktop::open(&config, clock) {
            Ok(running) => running,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(error = %msg, "screen capture unavailable; retrying");
                    let _ = tx.send(event(&clock, SourceEventKind::Failed, msg.clone()));
                    last_error = Some(msg);
                }
                sleep_unless_stopped(&stop, RETRY_AFTER);
                continue;
            }
        };
        last_error = None;
        let layout = ReportedLayout {
            places: running.places().to_vec(),
            size: running.desktop_size(),
        };
        report_layout(&clock, &tx, reported.as_ref(), &layout);
        reported = Some(layout);
        let end = running.watch(&stop, &tx);
        drop(running);
        match end {
            // Reopened at once: the new layout is reported when the streams run again.
            StreamEnd::Stopped | StreamEnd::GeometryChanged => {}
            // Nobody takes frames any more (the session is ending): stop capturing.
            StreamEnd::ReceiverGone => return,
            StreamEnd::Failed(msg) => {
                tracing::warn!(error = %msg, "screen capture interrupted; reopening");
                let _ = tx.send(event(&clock, SourceEventKind::Failed, msg));
                sleep_unless_stopped(&stop, RETRY_AFTER);
            }
        }
    }
}
