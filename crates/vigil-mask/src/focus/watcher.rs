//! What every focus watcher shares: its handle, its error, the fields it is asked to follow,
//! and the health reports it sends.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vigil_capture::Clock;

use crate::TriggerEvent;

/// The error behind a failure, kept as `source()` (a D-Bus error on Linux, a COM error on
/// Windows).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the focus watcher could not start. Callers branch on the variant, never on the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FocusWatcherError {
    /// The D-Bus session bus cannot be reached (no `DBUS_SESSION_BUS_ADDRESS`, daemon gone).
    #[error("the D-Bus session bus is unreachable")]
    SessionBusUnreachable(#[source] BoxError),
    /// The session has no accessibility bus (`org.a11y.Bus` does not answer: AT-SPI is not
    /// installed or its launcher is not running).
    #[error("the session has no accessibility bus")]
    NoAccessibilityBus(#[source] BoxError),
    /// The accessibility bus was announced but cannot be connected to.
    #[error("the accessibility bus is unreachable")]
    AccessibilityBusUnreachable(#[source] BoxError),
    /// The accessibility registry refused or failed the subscription to focus events (on
    /// Windows: COM or the UI Automation client could not be set up, or its focus handler not
    /// registered; on macOS: the watcher thread has no run loop).
    #[error("subscribing to focus events failed")]
    SubscribeFailed(#[source] BoxError),
    /// Start-up did not finish in time (a bus that accepts but never answers).
    #[error("the focus watcher did not start within {0:?}")]
    StartTimedOut(std::time::Duration),
    /// The watcher thread could not be started or ended during start-up.
    #[error("the focus watcher thread failed")]
    Thread(#[source] std::io::Error),
    /// The OS denies this process the accessibility API (macOS: the app is not allowed under
    /// System Settings › Privacy & Security › Accessibility). Retrying will not help until the
    /// user grants it.
    #[error("accessibility permission not granted")]
    PermissionDenied,
    /// No focus watcher exists for this OS.
    #[error("no focus watcher on this OS")]
    Unsupported,
}

/// The fields the accessibility watcher follows after focus left them (their
/// [`FieldInfo::key`](crate::FieldInfo::key)s), shared between the masking stage, which asks
/// for them ([`MaskCommand::Watch`](crate::MaskCommand::Watch)), and the watcher, which reports
/// a [`FieldState`](crate::TriggerEvent::FieldState) of each about every 100 ms. Backends that
/// give no keys (Windows, macOS today) never get any to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchedFields(Arc<Mutex<BTreeSet<String>>>);

impl WatchedFields {
    /// Starts following `key`.
    pub fn watch(&self, key: &str) {
        self.lock().insert(key.to_string());
    }

    /// Stops following `key`.
    pub fn unwatch(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The keys followed now.
    pub fn keys(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // A poisoned set is still a set of strings: keep using it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running focus watcher. Its thread stops when this is dropped or [`stop`](Self::stop)ped.
///
/// While it runs it sends `FocusGained`/`FocusLost` events and, once subscribed, a healthy
/// `Health` event; when the OS connection ends it sends an unhealthy `Health` event and its
/// thread ends (restarting is the caller's job).
#[derive(Debug)]
pub struct FocusWatcher {
    // Dropping the sender closes the channel, which the watcher's event loop awaits.
    stop: Option<async_channel::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FocusWatcher {
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "windows", target_os = "macos")),
        allow(dead_code)
    )]
    pub(super) fn new(stop: async_channel::Sender<()>, thread: JoinHandle<()>) -> Self {
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops the watcher and waits for its thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Whether the watcher thread still runs (false after the OS connection ended).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FocusWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A health report of the accessibility watcher, stamped now.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "windows", target_os = "macos")),
    allow(dead_code)
)]
pub(super) fn health(clock: &Clock, healthy: bool, detail: String) -> TriggerEvent {
    TriggerEvent::Health {
        at_ns: clock.now_ns(),
        source: crate::TriggerSource::Accessibility,
        healthy,
        detail,
    }
}
