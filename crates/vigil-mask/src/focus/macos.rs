//! AX (macOS Accessibility API) backend: an `AXObserver` for `AXFocusedUIElementChanged` on
//! the frontmost application, moved to the next one whenever the frontmost application changes.
//!
//! The watcher thread runs its own CFRunLoop, in slices of [`POLL`]: AX delivers the observer's
//! notifications within them, and between two slices the thread checks the stop signal and
//! which application is frontmost (AX's system-wide `AXFocusedApplication`, which needs no
//! AppKit main loop). The watched application's `AXApplicationDeactivated` ends the slice at
//! once, so a switch is followed without waiting for the poll, and stamped when it happened.
//! Notifications are stamped as soon as the callback runs, before any query to the application.
//!
//! It needs the accessibility permission (System Settings › Privacy & Security ›
//! Accessibility): without it [`start`] fails with [`FocusWatcherError::PermissionDenied`].
#![allow(unsafe_code)] // the AX C API: observer creation, registration and its C callback

mod ax;
mod displays;

use super::watcher::health;
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::mpsc;
use std::time::Duration;

use crossbeam_channel::Sender;
use objc2_application_services::{AXError, AXIsProcessTrusted, AXObserver, AXUIElement};
use objc2_core_foundation::{
    kCFRunLoopDefaultMode, CFBoolean, CFRetained, CFRunLoop, CFRunLoopMode, CFRunLoopRunResult,
    CFRunLoopSource, CFString, Type,
};
use vigil_capture::Clock;

use super::tracker::{Change, FocusTracker};
use super::watcher::{FocusWatcher, FocusWatcherError};
use crate::{TriggerEvent, TriggerSource};

/// How often the frontmost application and the stop signal are checked.
const POLL: Duration = Duration::from_millis(250);
/// A hung application must not stall the description of the next field for long (AX's
/// default is 6 s).
const APP_REPLY_TIMEOUT_S: f32 = 1.0;
/// Start-up only checks for a run loop.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A deactivation older than this is not taken as the moment of the next application switch.
const SWITCH_STAMP_MAX_AGE_NS: u64 = 1_000_000_000;

type StartResult = Result<(), FocusWatcherError>;

pub(super) fn start(
    clock: Clock,
    tx: Sender<TriggerEvent>,
) -> Result<FocusWatcher, FocusWatcherError> {
    // SAFETY: no arguments; asks the system whether this process may use the AX API.
    if !unsafe { AXIsProcessTrusted() } {
        return Err(FocusWatcherError::PermissionDenied);
    }
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (ready_tx, ready_rx) = mpsc::sync_channel::<StartResult>(1);
    let thread = std::thread::Builder::new()
        .name("vigil-focus-ax".into())
        .spawn(move || watch(clock, tx, stop_rx, ready_tx))
        .map_err(FocusWatcherError::Thread)?;
    let watcher = FocusWatcher::new(stop_tx, thread);
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(watcher),
        Ok(Err(e)) => Err(e),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(FocusWatcherError::StartTimedOut(START_TIMEOUT))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(FocusWatcherError::Thread(
            std::io::Error::other("the focus watcher thread ended during start-up"),
        )),
    }
}

fn default_mode() -> Option<&'static CFRunLoopMode> {
    // SAFETY: reads an immutable CoreFoundation constant.
    unsafe { kCFRunLoopDefaultMode }
}

/// The whole life of the watcher thread: start-up (reported on `ready`), then run-loop slices
/// until the FocusWatcher stops it or the watcher fails.
fn watch(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    stop: async_channel::Receiver<()>,
    ready: mpsc::SyncSender<StartResult>,
) {
    let Some(run_loop) = CFRunLoop::current() else {
        let _ = ready.send(Err(FocusWatcherError::SubscribeFailed(
            "the focus watcher thread has no run loop".into(),
        )));
        return;
    };
    // SAFETY: no arguments; returns a new (+1) reference.
    let system = unsafe { AXUIElement::new_system_wide() };
    // SAFETY: a setter on a valid element; on the system-wide element it sets the timeout of
    // every AX call this process makes.
    let _ = unsafe { system.set_messaging_timeout(APP_REPLY_TIMEOUT_S) };
    // Declared before `observer`, so dropped after it: every registration's refcon points here.
    let shared = Shared {
        clock,
        tx,
        names: ax::Names::new(),
        tracker: RefCell::new(FocusTracker::default()),
        app: RefCell::new(None),
        deactivated_at: Cell::new(None),
        failure: RefCell::new(None),
    };
    let mut observer: Option<Observer> = None;
    let mut front: Option<i32> = None;
    shared.send(health(&clock, true, "watching AX focus changes".into()));
    let _ = ready.send(Ok(()));
    tracing::debug!("AX focus watcher started");
    while !stop.is_closed() {
        match frontmost_pid(&system, &shared.names) {
            Ok(pid) if pid != front => {
                let now = clock.now_ns();
                // The deactivation of the previous application, when it told: the moment of the
                // switch. Else the moment the poll saw it.
                let at_ns = shared
                    .deactivated_at
                    .take()
                    .filter(|&t| now.saturating_sub(t) < SWITCH_STAMP_MAX_AGE_NS)
                    .unwrap_or(now);
                front = pid;
                drop(observer.take());
                observer = pid.and_then(|pid| Observer::register(pid, &shared, &run_loop));
                shared.on_switch(pid, at_ns);
            }
            Ok(_) => {
                if observer.is_none() {
                    // An application that was still starting, or refused: try again.
                    observer = front.and_then(|pid| Observer::register(pid, &shared, &run_loop));
                }
            }
            Err(AXError::APIDisabled) => shared.fail("the accessibility permission was revoked"),
            // A busy application: keep watching the one we have.
            Err(_) => {}
        }
        if shared.failure.borrow().is_some() {
            break;
        }
        if CFRunLoop::run_in_mode(default_mode(), POLL.as_secs_f64(), false)
            == CFRunLoopRunResult::Finished
        {
            // Nothing registered in the run loop (no observer): it returned at once.
            std::thread::sleep(POLL);
        }
    }
    drop(observer);
    if let Some(detail) = shared.failure.take() {
        tracing::warn!(%detail, "AX focus watcher stopped");
        shared.send(health(&clock, false, detail));
    }
}

/// The pid of the frontmost application; `None` when no application is (the login window).
fn frontmost_pid(system: &AXUIElement, names: &ax::Names) -> Result<Option<i32>, AXError> {
    let app = match ax::copy(system, &names.focused_application) {
        Ok(app) => app,
        Err(AXError::NoValue) => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(app) = app.downcast::<AXUIElement>() else {
        return Ok(None);
    };
    let mut pid = 0;
    // SAFETY: `pid` is a valid out pointer for the duration of the call.
    let error = unsafe { app.pid(NonNull::from(&mut pid)) };
    if error != AXError::Success {
        return Err(error);
    }
    Ok(Some(pid))
}

/// What the run-loop callback and the loop share. Both run on the watcher thread only (the
/// observer's run-loop source is added to that thread's run loop), hence cells.
struct Shared {
    clock: Clock,
    tx: Sender<TriggerEvent>,
    names: ax::Names,
    tracker: RefCell<FocusTracker<CFRetained<AXUIElement>>>,
    /// The frontmost application's name.
    app: RefCell<Option<String>>,
    /// When the watched application said it was deactivated (the switch not yet handled).
    deactivated_at: Cell<Option<u64>>,
    /// Why the watcher must end (set once; the loop then ends).
    failure: RefCell<Option<String>>,
}

impl Shared {
    fn send(&self, event: TriggerEvent) {
        if self.tx.send(event).is_err() {
            self.fail("the trigger event receiver is gone");
        }
    }

    fn fail(&self, detail: &str) {
        self.failure
            .borrow_mut()
            .get_or_insert_with(|| detail.to_string());
        // Ends the current run-loop slice, if in one (a callback); else a no-op.
        if let Some(run_loop) = CFRunLoop::current() {
            run_loop.stop();
        }
    }

    /// Another application is frontmost: its focused element has focus now (or nothing has).
    fn on_switch(&self, pid: Option<i32>, at_ns: u64) {
        let focused = pid.and_then(|pid| {
            // SAFETY: any pid is accepted (a stale one gives an element whose calls fail).
            let app = unsafe { AXUIElement::new_application(pid) };
            self.app.replace(ax::string(&app, &self.names.title));
            ax::element(&app, &self.names.focused_element)
        });
        match focused {
            Some(element) => self.on_focus(&element, at_ns),
            None => {
                self.app.replace(None);
                *self.tracker.borrow_mut() = FocusTracker::default();
                self.send(TriggerEvent::FocusLost {
                    at_ns,
                    source: TriggerSource::Accessibility,
                    has_value: None,
                });
            }
        }
    }

    fn on_focus(&self, element: &AXUIElement, at_ns: u64) {
        let change = self
            .tracker
            .borrow_mut()
            .on_signal(&element.retain(), true, at_ns);
        if change == Change::Ignore {
            return;
        }
        // Cloned first: no borrow is held while the application is queried.
        let app = self.app.borrow().clone();
        let field = ax::describe(element, &self.names, app);
        self.send(TriggerEvent::FocusGained {
            at_ns,
            source: TriggerSource::Accessibility,
            field,
        });
    }

    fn on_notification(&self, element: &AXUIElement, notification: &CFString, at_ns: u64) {
        if *notification == *self.names.deactivated {
            self.deactivated_at.set(Some(at_ns));
            // Ends the run-loop slice: the loop looks for the new frontmost application now.
            if let Some(run_loop) = CFRunLoop::current() {
                run_loop.stop();
            }
        } else {
            self.on_focus(element, at_ns);
        }
    }
}

/// The observer of one application, registered in the watcher thread's run loop; dropping it
/// unregisters it.
struct Observer {
    observer: CFRetained<AXObserver>,
    app: CFRetained<AXUIElement>,
    notifications: Vec<CFRetained<CFString>>,
    source: CFRetained<CFRunLoopSource>,
    run_loop: CFRetained<CFRunLoop>,
}

impl Observer {
    /// `None` when the application cannot be observed (yet): logged, retried by the caller.
    fn register(pid: i32, shared: &Shared, run_loop: &CFRunLoop) -> Option<Self> {
        let names = &shared.names;
        // SAFETY: any pid is accepted (a stale one gives an element whose calls fail).
        let app = unsafe { AXUIElement::new_application(pid) };
        // Chromium and Electron expose their web content only to assistive clients that ask;
        // other applications refuse the attribute, which is fine.
        // SAFETY: a setter on a valid element with a CFBoolean value.
        let _ =
            unsafe { app.set_attribute_value(&names.manual_accessibility, CFBoolean::new(true)) };
        let mut raw: *mut AXObserver = ptr::null_mut();
        // SAFETY: `on_notification` has the AXObserverCallback signature and contract;
        // `raw` is a valid out pointer, which receives a +1 reference on success.
        let error =
            unsafe { AXObserver::create(pid, Some(on_notification), NonNull::from(&mut raw)) };
        let Some(raw) = NonNull::new(raw).filter(|_| error == AXError::Success) else {
            tracing::debug!(pid, ?error, "AXObserverCreate failed");
            return None;
        };
        // SAFETY: the +1 reference of the Create function above, released once by CFRetained.
        let observer = unsafe { CFRetained::from_raw(raw) };
        // SAFETY: a getter on a valid observer (never null for one).
        let source = unsafe { observer.run_loop_source() };
        let mut registered = Self {
            observer,
            app,
            notifications: Vec::new(),
            source,
            run_loop: run_loop.retain(),
        };
        let refcon = ptr::from_ref(shared).cast_mut().cast::<c_void>();
        for (name, required) in [(&names.focus_changed, true), (&names.deactivated, false)] {
            // SAFETY: valid observer, element and name; `refcon` points to the Shared that
            // outlives every observer (see `watch`) and that the callback only reads through a
            // shared reference, on this thread.
            let error = unsafe {
                registered
                    .observer
                    .add_notification(&registered.app, name, refcon)
            };
            if error == AXError::Success {
                registered.notifications.push(name.clone());
            } else if required {
                tracing::debug!(pid, ?error, "AXObserverAddNotification failed");
                return None;
            }
        }
        registered
            .run_loop
            .add_source(Some(&registered.source), default_mode());
        Some(registered)
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for name in &self.notifications {
            // SAFETY: removes a registration made in `register` on the same observer and
            // element.
            let _ = unsafe { self.observer.remove_notification(&self.app, name) };
        }
        self.run_loop
            .remove_source(Some(&self.source), default_mode());
    }
}

/// The observer's callback, run by the watcher thread's run loop.
///
/// # Safety
///
/// Called by AX only, with `refcon` as registered in [`Observer::register`].
unsafe extern "C-unwind" fn on_notification(
    _observer: NonNull<AXObserver>,
    element: NonNull<AXUIElement>,
    notification: NonNull<CFString>,
    refcon: *mut c_void,
) {
    let Some(shared) = NonNull::new(refcon.cast::<Shared>()) else {
        return;
    };
    // SAFETY: `refcon` is the Shared of the watcher thread, which outlives every observer and
    // is only used on that thread, where this callback runs.
    let shared = unsafe { shared.as_ref() };
    // The stamp: before any query to the application.
    let at_ns = shared.clock.now_ns();
    // SAFETY: AX passes an element and a notification name valid for the callback's duration.
    let (element, notification) = unsafe { (element.as_ref(), notification.as_ref()) };
    // A panic must not unwind into the run loop's C frames; the watcher then ends (and the
    // controller masks while it is down).
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        shared.on_notification(element, notification, at_ns);
    }));
    if outcome.is_err() {
        shared.fail("the AX focus callback panicked");
    }
}
