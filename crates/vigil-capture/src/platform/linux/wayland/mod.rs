//! Wayland screen capture: the compositor shares every monitor through the xdg-desktop-portal
//! ScreenCast portal (ashpd) and delivers each one's frames through its own PipeWire stream.
//! The monitors are painted at their places into one picture of the desktop (`desktop.rs`), as
//! X11 grabs the whole root window. Compositors send frames on damage, capped at the configured
//! rate by negotiation; the desktop is sent at most `fps` times a second and only when it
//! changed, so the encoder sees a variable frame rate as on X11. A monitor whose stream changes
//! size lays the desktop out again, and the change is reported.

mod desktop;
mod format;
#[cfg(test)]
mod live_test;
mod portal;
mod sink;
mod stream;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::stoppable::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, ScreenConfig, SourceEventKind,
};

use sink::{event, Sink};
use stream::Ended;

const RETRY_AFTER: Duration = Duration::from_secs(1);
/// After the user refused the portal dialog, asking again every second would bury them in
/// dialogs; they get this long before the next one.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(30);

/// The portal answers and can share monitors. Does not ask the user (that happens on start).
pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    portal::probe()
}

/// The monitors the portal shares. Wayland offers no monitor list without a screen-cast grant,
/// so this starts (and closes) a portal session: the user sees the dialog unless a stored grant
/// still holds. Places and sizes are the compositor's logical ones (the portal names no primary
/// monitor: the first is listed as primary).
pub(crate) fn list_screens(config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    let cast = portal::start(config.draw_pointer, false, &AtomicBool::new(false))?;
    Ok(cast
        .streams
        .iter()
        .enumerate()
        .map(|(i, s)| s.monitor_info(i == 0))
        .collect())
}

/// The screen thread: (re)starts the portal session and the PipeWire streams, sends changed
/// frames, reports failures once per distinct error and retries until `stop` is set.
pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    let sink = Sink {
        clock,
        tx,
        stop: stop.clone(),
        reported: Rc::new(RefCell::new(None)),
        opened: Rc::new(Cell::new(false)),
    };
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        sink.opened.set(false);
        let error = match run_session(&config, &sink) {
            Ok(Ended::Stopped) => continue,
            Ok(Ended::ReceiverGone) => {
                // Nobody listens: reopening would only ask the compositor for nothing.
                while !stop.load(Ordering::SeqCst) {
                    sleep_unless_stopped(&stop, RETRY_AFTER);
                }
                break;
            }
            Err(e) => e,
        };
        if stop.load(Ordering::SeqCst) {
            break;
        }
        // A session that ran is a fresh start: its failure is reported even if it repeats.
        if sink.opened.get() {
            last_error = None;
        }
        let msg = error.to_string();
        if last_error.as_ref() != Some(&msg) {
            tracing::warn!(error = %msg, "Wayland screen capture unavailable; retrying");
            let _ = sink
                .tx
                .send(event(&sink.clock, SourceEventKind::Failed, msg.clone()));
            last_error = Some(msg);
        }
        let wait = if error.kind() == CaptureErrorKind::PermissionDenied {
            ASK_AGAIN_AFTER
        } else {
            RETRY_AFTER
        };
        sleep_unless_stopped(&stop, wait);
    }
}

/// One portal session: start it, capture every shared monitor, close it (on drop of `cast`).
fn run_session(config: &ScreenConfig, sink: &Sink) -> Result<Ended, CaptureError> {
    let mut cast = portal::start(config.draw_pointer, true, &sink.stop)?;
    let remote = cast.remote.take().ok_or_else(|| {
        CaptureError::new(CaptureErrorKind::Backend, "portal gave no PipeWire remote")
    })?;
    if cast.streams.is_empty() {
        return Err(CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            "portal shared no monitor",
        ));
    }
    stream::capture(remote, &cast.streams, config.fps, sink)
}
