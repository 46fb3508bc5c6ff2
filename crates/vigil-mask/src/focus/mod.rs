//! The OS accessibility focus watcher: reports every focus change as a [`TriggerEvent`] stamped
//! on the session clock the moment the OS event arrives, with what identifies the field (never
//! its text).
//!
//! Each OS has its backend in its own module behind `cfg`:
//! - Linux: AT-SPI on the session's accessibility bus (`linux.rs`);
//! - Windows: UI Automation's focus-changed event (`windows.rs`);
//! - macOS: the AX API, an `AXObserver` on the frontmost application that follows application
//!   switches (`macos.rs`); it needs the accessibility permission
//!   ([`FocusWatcherError::PermissionDenied`] without it).
//!
//! On any other OS [`start_focus_watcher`] returns [`FocusWatcherError::Unsupported`].
//!
//! [`TriggerEvent`]: crate::TriggerEvent

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
mod tracker;
mod watcher;
#[cfg(target_os = "windows")]
mod windows;

pub use watcher::{BoxError, FocusWatcher, FocusWatcherError, WatchedFields};

use crossbeam_channel::Sender;
use vigil_capture::Clock;

use crate::TriggerEvent;

/// Starts watching accessibility focus on its own thread and returns once subscribed (or why
/// not). Events go to `tx`; their `at_ns` comes from `clock`. The fields in `watched` are
/// sampled about every 100 ms.
#[cfg(target_os = "linux")]
pub fn start_focus_watcher(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    watched: WatchedFields,
) -> Result<FocusWatcher, FocusWatcherError> {
    linux::start(clock, tx, watched)
}

/// Starts watching accessibility focus on its own thread and returns once subscribed (or why
/// not). Events go to `tx`; their `at_ns` comes from `clock`.
#[cfg(target_os = "windows")]
pub fn start_focus_watcher(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    _watched: WatchedFields,
) -> Result<FocusWatcher, FocusWatcherError> {
    windows::start(clock, tx)
}

/// Starts watching accessibility focus on its own thread and returns once it runs (or why
/// not). Events go to `tx`; their `at_ns` comes from `clock`. Fails with
/// [`FocusWatcherError::PermissionDenied`] while the process is not a trusted accessibility
/// client.
#[cfg(target_os = "macos")]
pub fn start_focus_watcher(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    _watched: WatchedFields,
) -> Result<FocusWatcher, FocusWatcherError> {
    macos::start(clock, tx)
}

/// Starts watching accessibility focus; no backend exists for this OS.
#[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
pub fn start_focus_watcher(
    _clock: Clock,
    _tx: Sender<TriggerEvent>,
    _watched: WatchedFields,
) -> Result<FocusWatcher, FocusWatcherError> {
    Err(FocusWatcherError::Unsupported)
}
