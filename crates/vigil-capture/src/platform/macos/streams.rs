//! The running capture of the whole desktop: one ScreenCaptureKit stream per display, all
//! painting into one shared canvas, and the capture thread's loop that sends the canvas at most
//! `fps` times a second and watches for display changes.
#![allow(unsafe_code)] // ScreenCaptureKit calls

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use dispatch2::{DispatchQueue, DispatchRetained};
use objc2::rc::Retained;
use objc2::runtime::ProtocolObject;
use objc2::AnyThread;
use objc2_core_graphics::CGDirectDisplayID;
use objc2_core_media::{CMTime, CMTimeFlags};
use objc2_core_video::kCVPixelFormatType_32BGRA;
use objc2_foundation::NSArray;
use objc2_screen_capture_kit::{
    SCContentFilter, SCStream, SCStreamConfiguration, SCStreamOutputType,
};

use super::completion::{capture_error, shareable_content, wait_for_completion};
use super::displays::{active_displays, capturable_displays, DisplayGeometry, PlacedDisplay};
use super::frame_output::{ScreenOutput, SharedDesktop};
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, DesktopCanvas, MonitorRect, ScreenConfig,
    VideoFrame,
};

/// Longest wait between checks of the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);
/// How often the display layout is compared with the one the streams were built for.
const GEOMETRY_EVERY: Duration = Duration::from_secs(1);
/// Frames are painted at once, so a short queue is enough (Apple's own sample uses 5).
const QUEUE_DEPTH: isize = 5;

/// Why the capture of the desktop ended.
pub(super) enum StreamEnd {
    Stopped,
    ReceiverGone,
    GeometryChanged,
    Failed(String),
}

/// Where one captured display sits; what the screen thread reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DisplayPlace {
    pub id: CGDirectDisplayID,
    pub rect: MonitorRect,
}

/// One display's stream and the output object it calls.
struct DisplayStream {
    stream: Retained<SCStream>,
    output: Retained<ScreenOutput>,
    started: bool,
}

impl DisplayStream {
    fn start(&mut self) -> Result<(), CaptureError> {
        wait_for_completion("starting screen capture", |handler| {
            // SAFETY: the stream is configured and the handler matches the expected signature.
            unsafe { self.stream.startCaptureWithCompletionHandler(Some(handler)) }
        })?;
        self.started = true;
        Ok(())
    }

    /// Stops capture and detaches the output; the objects stay alive until dropped.
    fn shut_down(&mut self) {
        if self.started {
            self.started = false;
            let stopped = wait_for_completion("stopping screen capture", |handler| {
                // SAFETY: the stream was started; the handler matches the expected signature.
                unsafe { self.stream.stopCaptureWithCompletionHandler(Some(handler)) }
            });
            if let Err(e) = stopped {
                tracing::debug!(error = %e, "screen stream did not stop cleanly");
            }
        }
        // SAFETY: removes the output added in `add_stream`; an error only means it is gone.
        let _ = unsafe {
            self.stream.removeStreamOutput_type_error(
                ProtocolObject::from_ref(&*self.output),
                SCStreamOutputType::Screen,
            )
        };
    }
}

/// The started streams of every display; dropping it stops them all and waits until no
/// callback is running.
pub(super) struct RunningDesktop {
    streams: Vec<DisplayStream>,
    /// One serial queue for every stream's callbacks: they paint one canvas anyway.
    queue: DispatchRetained<DispatchQueue>,
    desktop: Arc<SharedDesktop>,
    places: Vec<DisplayPlace>,
    desktop_size: (u32, u32),
    /// CoreGraphics' view of the displays when the streams were built; polled for changes.
    geometry: Option<Vec<DisplayGeometry>>,
    frame_every: Duration,
    last_sent: Option<VideoFrame>,
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

impl RunningDesktop {
    /// Starts a stream for every display ScreenCaptureKit offers, each at its pixel size.
    pub(super) fn open(config: &ScreenConfig, clock: Clock) -> Result<Self, CaptureError> {
        // Read before the displays, so a change while the streams start is noticed afterwards.
        let geometry = active_displays();
        let displays = capturable_displays(&*shareable_content()?);
        if displays.is_empty() {
            return Err(CaptureError::new(
                CaptureErrorKind::DeviceNotFound,
                "no display to capture",
            ));
        }
        let rects: Vec<MonitorRect> = displays.iter().map(|d| d.rect).collect();
        let canvas = DesktopCanvas::new(&rects);
        let desktop_size = canvas.size();
        let mut running = Self {
            streams: Vec::with_capacity(displays.len()),
            queue: DispatchQueue::new("vigil.capture.screen", None),
            desktop: SharedDesktop::new(clock, canvas),
            places: displays
                .iter()
                .map(|d| DisplayPlace {
                    id: d.geometry.id,
                    rect: d.rect,
                })
                .collect(),
            desktop_size,
            geometry,
            frame_every: Duration::from_secs(1) / config.fps.max(1),
            last_sent: None,
        };
        // On an error, dropping `running` stops the streams already started.
        for (index, display) in displays.iter().enumerate() {
            running.add_stream(config, index, display)?;
        }
        Ok(running)
    }

    fn add_stream(
        &mut self,
        config: &ScreenConfig,
        index: usize,
        display: &PlacedDisplay,
    ) -> Result<(), CaptureError> {
        let output = ScreenOutput::new(self.desktop.clone(), index, display.geometry.id);
        // SAFETY: the filter and stream are built from valid objects; `output`, the delegate,
        // lives in `self.streams` until the stream is stopped (see `Drop for RunningDesktop`).
        let stream = unsafe {
            let filter = SCContentFilter::initWithDisplay_excludingWindows(
                SCContentFilter::alloc(),
                &display.display,
                &NSArray::new(),
            );
            SCStream::initWithFilter_configuration_delegate(
                SCStream::alloc(),
                &filter,
                &stream_configuration(config, display.geometry.pixels),
                Some(ProtocolObject::from_ref(&*output)),
            )
        };
        // SAFETY: the queue is a serial queue we own; the output handler is thread-safe.
        unsafe {
            stream.addStreamOutput_type_sampleHandlerQueue_error(
                ProtocolObject::from_ref(&*output),
                SCStreamOutputType::Screen,
                Some(&self.queue),
            )
        }
        .map_err(|e| capture_error(&e, "adding the screen output", CaptureErrorKind::Backend))?;
        let mut added = DisplayStream {
            stream,
            output,
            started: false,
        };
        let started = added.start();
        // Kept even when it failed to start, so that dropping `self` detaches its output.
        self.streams.push(added);
        started
    }

    /// Where each captured display sits in the desktop picture.
    pub(super) fn places(&self) -> &[DisplayPlace] {
        &self.places
    }

    /// Size of the desktop picture.
    pub(super) fn desktop_size(&self) -> (u32, u32) {
        self.desktop_size
    }

    /// Whether CoreGraphics now lays out the displays differently from when the streams started.
    fn geometry_changed(&self) -> bool {
        match (&self.geometry, active_displays()) {
            (Some(before), Some(now)) => *before != now,
            // Unknown then or now: only a stream failure or a later readable change restarts.
            _ => false,
        }
    }

    /// The painted desktop, unless nothing changed since the last frame sent.
    fn take_new_frame(&mut self) -> Option<VideoFrame> {
        let frame = self.desktop.take_frame()?;
        let unchanged = self.last_sent.as_ref().is_some_and(|last| {
            last.width == frame.width && last.height == frame.height && last.data == frame.data
        });
        if unchanged {
            return None;
        }
        self.last_sent = Some(frame.clone());
        Some(frame)
    }

    /// Sends the desktop at most `fps` times a second until stopped, the receiver is gone, the
    /// displays change or the system stops a stream.
    pub(super) fn watch(&mut self, stop: &AtomicBool, tx: &Sender<Capture>) -> StreamEnd {
        let mut next_frame = Instant::now() + self.frame_every;
        let mut next_geometry_check = Instant::now() + GEOMETRY_EVERY;
        loop {
            if stop.load(Ordering::SeqCst) {
                return StreamEnd::Stopped;
            }
            if let Some(error) = self.desktop.take_stop_error() {
                // An unplugged display stops its stream: that is a layout change, not a failure.
                return if self.geometry_changed() {
                    StreamEnd::GeometryChanged
                } else {
                    StreamEnd::Failed(error)
                };
            }
            let now = Instant::now();
            if now >= next_geometry_check {
                next_geometry_check = now + GEOMETRY_EVERY;
                if self.geometry_changed() {
                    return StreamEnd::GeometryChanged;
                }
            }
            if now >= next_frame {
                // A fixed grid caps the rate; after a stall it restarts instead of bursting.
                next_frame += self.frame_every;
                if next_frame <= now {
                    next_frame = now + self.frame_every;
                }
                if let Some(frame) = self.take_new_frame() {
                    if tx.send(Capture::Video(frame)).is_err() {
                        return StreamEnd::ReceiverGone;
                    }
                }
            }
            let wake = next_frame.min(next_geometry_check).min(now + STOP_POLL);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        }
    }
}

impl Drop for RunningDesktop {
    fn drop(&mut self) {
        for stream in &mut self.streams {
            stream.shut_down();
        }
        // Lets a callback already running on the queue finish before the outputs are released
        // (with the fields, after this).
        self.queue.exec_sync(|| {});
    }
}
