//! ScreenCaptureKit capture of the main display at its native pixel size. The system delivers
//! frames at most `fps` times a second and only when something changed; the output handler also
//! drops frames identical to the previous one. The display mode is polled: on a change of size or
//! of main display the stream is rebuilt and the change is reported.
#![allow(unsafe_code)] // ScreenCaptureKit calls and completion-handler blocks

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use dispatch2::{DispatchQueue, DispatchRetained};
use objc2::rc::Retained;
use objc2::runtime::ProtocolObject;
use objc2::{AnyThread, DefinedClass};
use objc2_core_graphics::{
    CGDirectDisplayID, CGDisplayCopyDisplayMode, CGDisplayMode, CGMainDisplayID,
};
use objc2_core_media::{CMTime, CMTimeFlags};
use objc2_core_video::kCVPixelFormatType_32BGRA;
use objc2_foundation::NSArray;
use objc2_screen_capture_kit::{
    SCContentFilter, SCDisplay, SCShareableContent, SCStream, SCStreamConfiguration,
    SCStreamOutputType,
};

use super::completion::{capture_error, shareable_content, wait_for_completion};
use super::frame_output::{FrameSink, ScreenOutput};
use crate::audio::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, ScreenConfig, SourceEventKind,
};

const WATCH_EVERY: Duration = Duration::from_millis(200);
const GEOMETRY_EVERY: Duration = Duration::from_millis(500);
/// Frames are copied out at once, so a short queue is enough (Apple's own sample uses 5).
const QUEUE_DEPTH: isize = 5;

/// Size of a display in pixels (not points, which are half of it on Retina screens).
fn pixel_size(id: CGDirectDisplayID) -> Option<(u32, u32)> {
    let mode = CGDisplayCopyDisplayMode(id)?;
    let width = u32::try_from(CGDisplayMode::pixel_width(Some(&mode))).ok()?;
    let height = u32::try_from(CGDisplayMode::pixel_height(Some(&mode))).ok()?;
    (width > 0 && height > 0).then_some((width, height))
}

/// Capture size of a display: its mode in pixels, else its size in points.
fn capture_size(display: &SCDisplay, mode_size: Option<(u32, u32)>) -> Option<(u32, u32)> {
    mode_size.or_else(|| {
        // SAFETY: plain property reads on a valid SCDisplay.
        let (width, height) = unsafe { (display.width(), display.height()) };
        Some((u32::try_from(width).ok()?, u32::try_from(height).ok()?))
    })
}

struct MainDisplay {
    display: Retained<SCDisplay>,
    id: CGDirectDisplayID,
    /// `CGMainDisplayID` when the display was chosen; polled to notice a new main display.
    main_id: CGDirectDisplayID,
    /// What `pixel_size` said when the stream was built; polled to notice mode changes.
    mode_size: Option<(u32, u32)>,
    /// The capture size: `mode_size`, or the size in points when the mode is unreadable.
    size: (u32, u32),
}

/// The main display (menu bar), or the first one ScreenCaptureKit lists.
fn main_display(content: &SCShareableContent) -> Result<MainDisplay, CaptureError> {
    // SAFETY: plain property reads on a valid SCShareableContent and its SCDisplays.
    let displays = unsafe { content.displays() };
    let main_id = CGMainDisplayID();
    let display = displays
        .iter()
        // SAFETY: a plain property read on a valid SCDisplay.
        .find(|d| unsafe { d.displayID() } == main_id)
        .or_else(|| displays.firstObject())
        .ok_or_else(|| {
            CaptureError::new(CaptureErrorKind::DeviceNotFound, "no display to capture")
        })?;
    // SAFETY: a plain property read on a valid SCDisplay.
    let id = unsafe { display.displayID() };
    let mode_size = pixel_size(id);
    let size = capture_size(&display, mode_size).ok_or_else(|| {
        CaptureError::new(
            CaptureErrorKind::DeviceLost,
            format!("display {id} has no size"),
        )
    })?;
    Ok(MainDisplay {
        display,
        id,
        main_id,
        mode_size,
        size,
    })
}

pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    main_display(&*shareable_content()?).map(|_| ())
}

/// Displays with their origin in the global desktop (points) and their size in pixels.
pub(crate) fn list_screens(_config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    let content = shareable_content()?;
    let main_id = CGMainDisplayID();
    // SAFETY: plain property reads on a valid SCShareableContent and its SCDisplays.
    let displays = unsafe { content.displays() };
    Ok(displays
        .iter()
        .map(|display| {
            // SAFETY: plain property reads on a valid SCDisplay.
            let (id, frame) = unsafe { (display.displayID(), display.frame()) };
            let (width, height) = capture_size(&display, pixel_size(id)).unwrap_or((0, 0));
            MonitorInfo {
                name: format!("display-{id}"),
                x: frame.origin.x as i32,
                y: frame.origin.y as i32,
                width,
                height,
                primary: id == main_id,
            }
        })
        .collect())
}

/// A started stream; dropping it stops capture and waits until no callback is running.
struct RunningStream {
    stream: Retained<SCStream>,
    output: Retained<ScreenOutput>,
    queue: DispatchRetained<DispatchQueue>,
    started: bool,
    display_id: CGDirectDisplayID,
    main_id: CGDirectDisplayID,
    mode_size: Option<(u32, u32)>,
    size: (u32, u32),
}

enum StreamEnd {
    Stopped,
    ReceiverGone,
    GeometryChanged,
    Failed(String),
}

fn stream_configuration(
    config: &ScreenConfig,
    size: (u32, u32),
) -> Retained<SCStreamConfiguration> {
    let fps = i32::try_from(config.fps.max(1)).unwrap_or(i32::MAX);
    // SAFETY: a fresh configuration object, set up with plain property writes before use.
    unsafe {
        let configuration = SCStreamConfiguration::new();
        configuration.setWidth(size.0 as usize);
        configuration.setHeight(size.1 as usize);
        configuration.setPixelFormat(kCVPixelFormatType_32BGRA);
        configuration.setMinimumFrameInterval(CMTime {
            value: 1,
            timescale: fps,
            flags: CMTimeFlags::Valid,
            epoch: 0,
        });
        configuration.setShowsCursor(config.draw_pointer);
        configuration.setQueueDepth(QUEUE_DEPTH);
        configuration
    }
}

fn open_stream(
    config: &ScreenConfig,
    clock: Clock,
    tx: &Sender<Capture>,
) -> Result<RunningStream, CaptureError> {
    let main = main_display(&*shareable_content()?)?;
    let output = ScreenOutput::new(FrameSink::new(clock, tx.clone()));
    let queue = DispatchQueue::new("vigil.capture.screen", None);
    // SAFETY: the filter and stream are built from valid objects; `output`, the delegate, lives
    // in `RunningStream` until the stream is stopped (see `Drop for RunningStream`).
    let stream = unsafe {
        let filter = SCContentFilter::initWithDisplay_excludingWindows(
            SCContentFilter::alloc(),
            &main.display,
            &NSArray::new(),
        );
        SCStream::initWithFilter_configuration_delegate(
            SCStream::alloc(),
            &filter,
            &stream_configuration(config, main.size),
            Some(ProtocolObject::from_ref(&*output)),
        )
    };
    // SAFETY: the queue is a serial queue we own; the output handler is thread-safe.
    unsafe {
        stream.addStreamOutput_type_sampleHandlerQueue_error(
            ProtocolObject::from_ref(&*output),
            SCStreamOutputType::Screen,
            Some(&queue),
        )
    }
    .map_err(|e| capture_error(&e, "adding the screen output", CaptureErrorKind::Backend))?;
    let mut running = RunningStream {
        stream,
        output,
        queue,
        started: false,
        display_id: main.id,
        main_id: main.main_id,
        mode_size: main.mode_size,
        size: main.size,
    };
    wait_for_completion("starting screen capture", |handler| {
        // SAFETY: the stream is configured and the handler matches the expected signature.
        unsafe {
            running
                .stream
                .startCaptureWithCompletionHandler(Some(handler))
        }
    })?;
    running.started = true;
    Ok(running)
}

impl RunningStream {
    /// Waits until stopped, the receiver is gone, the display changes or the system stops it.
    fn watch(&self, stop: &AtomicBool) -> StreamEnd {
        let mut last_check = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                return StreamEnd::Stopped;
            }
            let sink = self.output.ivars();
            if sink.receiver_gone() {
                return StreamEnd::ReceiverGone;
            }
            if let Some(error) = sink.take_stop_error() {
                return StreamEnd::Failed(error);
            }
            if last_check.elapsed() >= GEOMETRY_EVERY {
                last_check = Instant::now();
                if CGMainDisplayID() != self.main_id
                    || pixel_size(self.display_id) != self.mode_size
                {
                    return StreamEnd::GeometryChanged;
                }
            }
            std::thread::sleep(WATCH_EVERY);
        }
    }
}

impl Drop for RunningStream {
    fn drop(&mut self) {
        if self.started {
            let stopped = wait_for_completion("stopping screen capture", |handler| {
                // SAFETY: the stream was started; the handler matches the expected signature.
                unsafe { self.stream.stopCaptureWithCompletionHandler(Some(handler)) }
            });
            if let Err(e) = stopped {
                tracing::debug!(error = %e, "screen stream did not stop cleanly");
            }
        }
        // SAFETY: removes the output added in `open_stream`; an error only means it is gone.
        let _ = unsafe {
            self.stream.removeStreamOutput_type_error(
                ProtocolObject::from_ref(&*self.output),
                SCStreamOutputType::Screen,
            )
        };
        // Lets a callback already running on the queue finish before the output is released.
        self.queue.exec_sync(|| {});
    }
}

fn event(clock: &Clock, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, "screen", kind, detail)
}

/// The screen thread: (re)opens the stream, follows display changes, retries failures.
pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    let mut reported: Option<(CGDirectDisplayID, (u32, u32))> = None;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let running = match open_stream(&config, clock, &tx) {
            Ok(running) => running,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(error = %msg, "screen capture unavailable; retrying");
                    let _ = tx.send(event(&clock, SourceEventKind::Failed, msg.clone()));
                    last_error = Some(msg);
                }
                sleep_unless_stopped(&stop, Duration::from_secs(1));
                continue;
            }
        };
        last_error = None;
        let (id, size) = (running.display_id, running.size);
        let detail = format!("display {id} {}x{}", size.0, size.1);
        match reported {
            None => {
                let _ = tx.send(event(&clock, SourceEventKind::DeviceOpened, detail));
            }
            Some((old_id, _)) if old_id != id => {
                tracing::info!(from = old_id, to = id, "main display changed");
                let _ = tx.send(event(&clock, SourceEventKind::DeviceChanged, detail));
            }
            Some((_, old)) if old != size => {
                tracing::info!(from = ?old, to = ?size, "screen geometry changed");
                let _ = tx.send(event(
                    &clock,
                    SourceEventKind::GeometryChanged,
                    format!("{}x{} -> {}x{}", old.0, old.1, size.0, size.1),
                ));
            }
            Some(_) => {}
        }
        reported = Some((id, size));
        let end = running.watch(&stop);
        drop(running);
        match end {
            StreamEnd::Stopped | StreamEnd::GeometryChanged => {}
            // Nobody takes frames any more (the session is ending): stop capturing.
            StreamEnd::ReceiverGone => return,
            StreamEnd::Failed(msg) => {
                tracing::warn!(error = %msg, "screen capture interrupted; reopening");
                let _ = tx.send(event(&clock, SourceEventKind::Failed, msg));
                sleep_unless_stopped(&stop, Duration::from_secs(1));
            }
        }
    }
}
