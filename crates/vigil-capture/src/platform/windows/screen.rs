//! Windows.Graphics.Capture of every monitor, as one image of the virtual desktop.
//!
//! One capture session per monitor paints its frames into a shared [`DesktopCanvas`] at the
//! monitor's place. The OS delivers a monitor's frame only when its content changed (at most
//! `fps` times a second where the OS can limit it); the supervising thread takes a desktop frame
//! at most `fps` times a second and only when some monitor painted, which gives the variable
//! frame rate. The layout (monitor set, positions, sizes) is polled every second: on a change
//! every session stops, the change is reported and capture restarts on the new layout. Other
//! failures are reported and retried every second.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use windows_capture::capture::{CaptureControl, Context, GraphicsCaptureApiHandler};
use windows_capture::frame::Frame;
use windows_capture::graphics_capture_api::{GraphicsCaptureApi, InternalCaptureControl};
use windows_capture::monitor::Monitor;
use windows_capture::settings::{
    ColorFormat, CursorCaptureSettings, DirtyRegionSettings, DrawBorderSettings,
    MinimumUpdateIntervalSettings, SecondaryWindowSettings, Settings,
};

use super::monitors::{desktop_monitors, DesktopMonitor};
use crate::stoppable::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, DesktopCanvas, MonitorInfo, MonitorRect,
    ScreenConfig, SourceEventKind, VideoFrame,
};

/// How often the monitor layout is compared with the one being captured.
const LAYOUT_EVERY: Duration = Duration::from_secs(1);
/// The wait before retrying after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Longest sleep of the supervising thread, so that a stop is noticed quickly at low rates.
const LONGEST_SLEEP: Duration = Duration::from_millis(100);

fn backend(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::new(CaptureErrorKind::BackendUnavailable, e.to_string())
}

pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    desktop_monitors().map(|_| ())
}

/// Monitors with their place in the virtual desktop and their size, in physical pixels.
pub(crate) fn list_screens(_config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    desktop_monitors()?
        .into_iter()
        .map(|m| {
            Ok(MonitorInfo {
                name: m.monitor.device_name().map_err(backend)?,
                x: m.rect.x,
                y: m.rect.y,
                width: m.rect.width,
                height: m.rect.height,
                primary: m.primary,
            })
        })
        .collect()
}

/// The canvas every session of one layout paints into.
struct PaintedDesktop {
    canvas: DesktopCanvas,
    /// When the newest painted frame arrived: the stamp of the next desktop frame.
    newest_paint_ns: u64,
}

type SharedDesktop = Arc<Mutex<PaintedDesktop>>;

/// A panicking painter leaves at worst a half-painted image: keep using the canvas.
fn lock(desktop: &SharedDesktop) -> MutexGuard<'_, PaintedDesktop> {
    desktop.lock().unwrap_or_else(PoisonError::into_inner)
}

struct PainterFlags {
    /// The monitor's index in the canvas layout.
    index: usize,
    desktop: SharedDesktop,
    clock: Clock,
}

/// The frame handler of one monitor's session: paints every frame it gets into the canvas.
struct MonitorPainter {
    flags: PainterFlags,
}

impl GraphicsCaptureApiHandler for MonitorPainter {
    type Flags = PainterFlags;
    type Error = CaptureError;

    fn new(ctx: Context<Self::Flags>) -> Result<Self, Self::Error> {
        Ok(Self { flags: ctx.flags })
    }

    fn on_frame_arrived(
        &mut self,
        frame: &mut Frame,
        _control: InternalCaptureControl,
    ) -> Result<(), Self::Error> {
        let arrived_ns = self.flags.clock.now_ns();
        let mut buffer = frame.buffer().map_err(backend)?;
        let (width, height) = (buffer.width(), buffer.height());
        let stride = buffer.row_pitch() as usize;
        // The mapped texture rows, padding included: the canvas copies row by row anyway.
        let pixels = buffer.as_raw_buffer();
        let mut desktop = lock(&self.flags.desktop);
        desktop
            .canvas
            .paint(self.flags.index, pixels, width, height, stride);
        desktop.newest_paint_ns = arrived_ns;
        Ok(())
    }
}

type Session = CaptureControl<MonitorPainter, CaptureError>;

/// Session options, each used only where this Windows version supports it: an unsupported
/// option would make every session fail to start.
struct SessionOptions {
    cursor: CursorCaptureSettings,
    border: DrawBorderSettings,
    interval: MinimumUpdateIntervalSettings,
}

impl SessionOptions {
    fn for_this_windows(config: &ScreenConfig) -> Self {
        let cursor = match GraphicsCaptureApi::is_cursor_settings_supported() {
            Ok(true) if config.draw_pointer => CursorCaptureSettings::WithCursor,
            Ok(true) => CursorCaptureSettings::WithoutCursor,
            _ => CursorCaptureSettings::Default,
        };
        // Without this the OS draws a yellow frame around every captured monitor.
        let border = match GraphicsCaptureApi::is_border_settings_supported() {
            Ok(true) => DrawBorderSettings::WithoutBorder,
            _ => DrawBorderSettings::Default,
        };
        let interval = match GraphicsCaptureApi::is_minimum_update_interval_supported() {
            Ok(true) => MinimumUpdateIntervalSettings::Custom(frame_interval(config)),
            _ => MinimumUpdateIntervalSettings::Default,
        };
        Self {
            cursor,
            border,
            interval,
        }
    }
}

fn frame_interval(config: &ScreenConfig) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(config.fps.max(1)))
}

fn start_session(
    monitor: Monitor,
    options: &SessionOptions,
    flags: PainterFlags,
) -> Result<Session, CaptureError> {
    let settings = Settings::new(
        monitor,
        options.cursor,
        options.border,
        SecondaryWindowSettings::Default,
        options.interval,
        DirtyRegionSettings::Default,
        ColorFormat::Bgra8,
        flags,
    );
    MonitorPainter::start_free_threaded(settings).map_err(backend)
}

/// Why the capture of one layout ended.
enum DesktopEnd {
    Stopped,
    ReceiverGone,
    LayoutChanged,
    Failed(String),
}

/// The sessions of every monitor of one layout; dropping it stops them all.
struct RunningDesktop {
    layout: Vec<DesktopMonitor>,
    desktop: SharedDesktop,
    sessions: Vec<Session>,
}

impl RunningDesktop {
    fn start(
        config: &ScreenConfig,
        clock: Clock,
        layout: Vec<DesktopMonitor>,
        canvas: DesktopCanvas,
    ) -> Result<Self, CaptureError> {
        let desktop = Arc::new(Mutex::new(PaintedDesktop {
            canvas,
            newest_paint_ns: 0,
        }));
        let options = SessionOptions::for_this_windows(config);
        // Sessions started so far are stopped by `Drop` if a later one fails.
        let mut running = Self {
            layout,
            desktop,
            sessions: Vec::new(),
        };
        for (index, entry) in running.layout.iter().enumerate() {
            let flags = PainterFlags {
                index,
                desktop: running.desktop.clone(),
                clock,
            };
            let session = start_session(entry.monitor, &options, flags)
                .map_err(|e| CaptureError::new(e.kind(), format!("monitor {}: {e}", index + 1)))?;
            running.sessions.push(session);
        }
        Ok(running)
    }

    /// Sends desktop frames at most `fps` times a second until the layout changes, a session
    /// ends, the receiver is gone or `stop` is set.
    fn watch(
        &mut self,
        config: &ScreenConfig,
        tx: &Sender<Capture>,
        stop: &AtomicBool,
    ) -> DesktopEnd {
        let interval = frame_interval(config);
        let mut next_frame = Instant::now() + interval;
        let mut next_layout_check = Instant::now() + LAYOUT_EVERY;
        let mut last_pts: Option<u64> = None;
        loop {
            if stop.load(Ordering::SeqCst) {
                return DesktopEnd::Stopped;
            }
            let now = Instant::now();
            if now < next_frame {
                std::thread::sleep((next_frame - now).min(LONGEST_SLEEP));
                continue;
            }
            // Fixed steps keep the rate at `fps` despite the work below; after a stall (a slow
            // send) the schedule restarts instead of bursting to catch up.
            next_frame += interval;
            if next_frame < now {
                next_frame = now + interval;
            }
            if let Some(frame) = self.take_frame(&mut last_pts) {
                if tx.send(Capture::Video(frame)).is_err() {
                    return DesktopEnd::ReceiverGone;
                }
            }
            let session_ended = self.sessions.iter().position(Session::is_finished);
            if session_ended.is_some() || now >= next_layout_check {
                next_layout_check = now + LAYOUT_EVERY;
                // A vanished monitor also ends its session: a new layout explains that.
                if desktop_monitors().map_or(true, |layout| layout != self.layout) {
                    return DesktopEnd::LayoutChanged;
                }
            }
            if let Some(index) = session_ended {
                let session = self.sessions.swap_remove(index);
                let why = match session.wait() {
                    Err(e) => e.to_string(),
                    Ok(()) => "capture session closed".to_string(),
                };
                return DesktopEnd::Failed(format!("monitor {}: {why}", index + 1));
            }
        }
    }

    /// The desktop, if a monitor painted since the last frame, stamped with the newest paint.
    fn take_frame(&self, last_pts: &mut Option<u64>) -> Option<VideoFrame> {
        let mut desktop = lock(&self.desktop);
        // Strictly increasing stamps, even if two frames carried the same paint time.
        let pts = match *last_pts {
            Some(last) => desktop.newest_paint_ns.max(last + 1),
            None => desktop.newest_paint_ns,
        };
        let frame = desktop.canvas.take_frame(pts)?;
        *last_pts = Some(pts);
        Some(frame)
    }
}

impl Drop for RunningDesktop {
    fn drop(&mut self) {
        for session in self.sessions.drain(..) {
            // Stops the session's thread and joins it; an error means it had already ended.
            let _ = session.stop();
        }
    }
}

fn rects(layout: &[DesktopMonitor]) -> Vec<MonitorRect> {
    layout.iter().map(|m| m.rect).collect()
}

fn describe(size: (u32, u32)) -> String {
    format!("{}x{}", size.0, size.1)
}

fn event(clock: &Clock, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, "screen", kind, detail)
}

pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    // The layout last captured (or tried) and its desktop size, to report changes against.
    let mut reported: Option<(Vec<DesktopMonitor>, (u32, u32))> = None;
    while !stop.load(Ordering::SeqCst) {
        let started = desktop_monitors().and_then(|layout| {
            let canvas = DesktopCanvas::new(&rects(&layout));
            let size = canvas.size();
            match &reported {
                Some((old_layout, old_size)) if *old_layout != layout => {
                    let detail = format!(
                        "{} -> {}, {} monitors",
                        describe(*old_size),
                        describe(size),
                        layout.len()
                    );
                    tracing::info!(%detail, "screen geometry changed");
                    let _ = tx.send(event(&clock, SourceEventKind::GeometryChanged, detail));
                }
                _ => {}
            }
            reported = Some((layout.clone(), size));
            RunningDesktop::start(&config, clock, layout, canvas)
        });
        let mut running = match started {
            Ok(running) => running,
            Err(e) => {
                tracing::warn!(error = %e, "screen capture failed to start; retrying");
                let _ = tx.send(event(&clock, SourceEventKind::Failed, e.to_string()));
                sleep_unless_stopped(&stop, RETRY_AFTER);
                continue;
            }
        };
        let (size, monitors) = (lock(&running.desktop).canvas.size(), running.layout.len());
        let _ = tx.send(event(
            &clock,
            SourceEventKind::DeviceOpened,
            format!("{monitors} monitors, {} desktop", describe(size)),
        ));
        let end = running.watch(&config, &tx, &stop);
        drop(running);
        match end {
            DesktopEnd::Stopped | DesktopEnd::LayoutChanged => {}
            // Nobody takes frames any more (the session is ending): stop capturing.
            DesktopEnd::ReceiverGone => return,
            DesktopEnd::Failed(msg) => {
                tracing::warn!(error = %msg, "screen capture interrupted; reopening");
                let _ = tx.send(event(&clock, SourceEventKind::Failed, msg));
                sleep_unless_stopped(&stop, RETRY_AFTER);
            }
        }
    }
}
