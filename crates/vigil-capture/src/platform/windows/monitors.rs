//! The monitors of the virtual desktop and where each one sits in it, in physical pixels (the
//! unit Windows.Graphics.Capture delivers frames in).

use windows::Win32::Graphics::Gdi::{GetMonitorInfoW, HMONITOR, MONITORINFO};
use windows::Win32::UI::HiDpi::{
    SetThreadDpiAwarenessContext, DPI_AWARENESS_CONTEXT, DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2,
};
use windows::Win32::UI::WindowsAndMessaging::MONITORINFOF_PRIMARY;
use windows_capture::monitor::Monitor;

use crate::{CaptureError, CaptureErrorKind, MonitorRect};

/// One monitor: the handle to capture it by and its rectangle in the virtual desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DesktopMonitor {
    pub(super) monitor: Monitor,
    pub(super) rect: MonitorRect,
    pub(super) primary: bool,
}

/// Every monitor, in the order Windows enumerates them. Polled: two calls give equal lists
/// exactly when the monitor set, positions and sizes are unchanged.
pub(super) fn desktop_monitors() -> Result<Vec<DesktopMonitor>, CaptureError> {
    let _physical = PhysicalPixels::enter();
    let monitors = Monitor::enumerate().map_err(|e| {
        CaptureError::new(
            CaptureErrorKind::BackendUnavailable,
            format!("EnumDisplayMonitors: {e}"),
        )
    })?;
    if monitors.is_empty() {
        return Err(CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            "no monitor to capture",
        ));
    }
    monitors
        .into_iter()
        .map(|monitor| {
            // A monitor unplugged since the enumeration: the caller retries with a new list.
            let info = monitor_info(monitor).ok_or_else(|| {
                CaptureError::new(
                    CaptureErrorKind::DeviceLost,
                    "a monitor went away while the layout was read",
                )
            })?;
            let area = info.rcMonitor;
            Ok(DesktopMonitor {
                monitor,
                rect: MonitorRect {
                    x: area.left,
                    y: area.top,
                    width: area.right.saturating_sub(area.left).max(0) as u32,
                    height: area.bottom.saturating_sub(area.top).max(0) as u32,
                },
                primary: info.dwFlags & MONITORINFOF_PRIMARY != 0,
            })
        })
        .collect()
}

#[allow(unsafe_code)]
fn monitor_info(monitor: Monitor) -> Option<MONITORINFO> {
    let mut info = MONITORINFO {
        cbSize: std::mem::size_of::<MONITORINFO>() as u32,
        ..Default::default()
    };
    // SAFETY: `info` is a writable MONITORINFO whose cbSize says so; the handle is only looked
    // up (a stale one makes the call return FALSE, it is never dereferenced by us).
    let found = unsafe { GetMonitorInfoW(HMONITOR(monitor.as_raw_hmonitor()), &mut info) };
    found.as_bool().then_some(info)
}

/// Makes this thread's user32 calls answer in physical pixels until dropped. Without it a
/// DPI-unaware process gets scaled rectangles that do not match the captured frames.
struct PhysicalPixels {
    /// The thread's previous context; null when the OS refused (per-monitor v2 needs Windows 10
    /// 1703; Windows.Graphics.Capture needs newer anyway).
    previous: DPI_AWARENESS_CONTEXT,
}

impl PhysicalPixels {
    #[allow(unsafe_code)]
    fn enter() -> Self {
        // SAFETY: only changes how this thread's user32 calls scale coordinates (no memory is
        // involved); `Drop` restores the previous context on the same thread.
        let previous =
            unsafe { SetThreadDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2) };
        Self { previous }
    }
}

impl Drop for PhysicalPixels {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // Not `is_invalid()`: it also rejects -1, which is DPI_AWARENESS_CONTEXT_UNAWARE.
        if !self.previous.0.is_null() {
            // SAFETY: restores the context SetThreadDpiAwarenessContext returned on this thread
            // (the guard is not Send: its field is a raw pointer).
            unsafe { SetThreadDpiAwarenessContext(self.previous) };
        }
    }
}
