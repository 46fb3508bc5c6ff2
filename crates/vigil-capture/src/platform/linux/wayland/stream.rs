//! The PipeWire side: connects to the portal's remote, negotiates raw BGRx/BGRA (or RGBx/RGBA,
//! swizzled here) at the monitor's size and at most `fps` frames a second, and turns buffers
//! into packed BGR0 frames, sending only those that differ from the previous one.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use pipewire as pw;
use pw::spa;
use pw::stream::{Stream, StreamFlags, StreamState};
use spa::buffer::{ChunkFlags, DataType};
use spa::param::ParamType;
use spa::pod::Pod;
use spa::utils::Direction;

use super::format::{enum_formats, negotiated, pack_rows, Layout};
use super::portal::PortalStream;
use super::{event, Sink};
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, PixelFormat, SourceEventKind, VideoFrame,
};

/// How often the main loop checks the stop flag and flushes a held-back frame.
const TICK: Duration = Duration::from_millis(100);

/// Why a capture ended without error.
pub(super) enum Ended {
    /// `stop` was set.
    Stopped,
    /// Nobody receives frames any more.
    ReceiverGone,
}

/// What the callbacks report to the thread, which reads it once the main loop returns.
struct Outcome {
    failure: RefCell<Option<CaptureError>>,
    receiver_gone: Cell<bool>,
    mainloop: pw::main_loop::MainLoopWeak,
}

impl Outcome {
    fn fail(&self, kind: CaptureErrorKind, message: String) {
        self.failure
            .borrow_mut()
            .get_or_insert_with(|| CaptureError::new(kind, message));
        self.quit();
    }

    fn quit(&self) {
        if let Some(mainloop) = self.mainloop.upgrade() {
            mainloop.quit();
        }
    }
}

/// State of the stream callbacks (they run on this thread, inside the main loop).
struct Frames {
    clock: Clock,
    tx: Sender<Capture>,
    outcome: Rc<Outcome>,
    node_id: u32,
    monitors: usize,
    /// Last size reported in an event; shared across sessions, like the X11 backend's.
    reported: Rc<Cell<Option<(u32, u32)>>>,
    /// Set once this session sent DeviceOpened.
    opened: Rc<Cell<bool>>,
    layout: Option<Layout>,
    previous: Option<Arc<Vec<u8>>>,
    /// The newest picture, packed; when `pending`, it changed but is not sent yet.
    scratch: Vec<u8>,
    /// Shortest gap between sent frames (a little under 1/fps, for delivery jitter).
    min_gap_ns: u64,
    last_sent_ns: Option<u64>,
    pending: bool,
}

impl Frames {
    fn on_format(&mut self, id: u32, param: Option<&Pod>) {
        let Some(param) = param else { return };
        if id != ParamType::Format.as_raw() {
            return;
        }
        let (layout, info) = match negotiated(param) {
            None => return,
            Some(Ok(negotiated)) => negotiated,
            Some(Err(e)) => {
                self.outcome.fail(e.kind(), e.to_string());
                return;
            }
        };
        let size = (layout.width, layout.height);
        self.layout = Some(layout);
        // A new format starts a new picture: its first frame is always sent.
        self.previous = None;
        self.pending = false;
        tracing::info!(
            node = self.node_id,
            width = size.0,
            height = size.1,
            format = ?info.format(),
            max_fps = info.max_framerate().num,
            "screen-cast stream negotiated"
        );
        if !self.opened.replace(true) {
            let detail = format!(
                "Wayland portal stream {} (first of {} monitors) {}x{}",
                self.node_id, self.monitors, size.0, size.1
            );
            let _ = self
                .tx
                .send(event(&self.clock, SourceEventKind::DeviceOpened, detail));
        }
        if let Some(old) = self.reported.replace(Some(size)).filter(|old| *old != size) {
            tracing::info!(from = ?old, to = ?size, "screen geometry changed");
            let detail = format!("{}x{} -> {}x{}", old.0, old.1, size.0, size.1);
            let _ = self
                .tx
                .send(event(&self.clock, SourceEventKind::GeometryChanged, detail));
        }
    }

    fn on_process(&mut self, stream: &Stream) {
        let pts_ns = self.clock.now_ns();
        let Some(mut buffer) = stream.dequeue_buffer() else {
            return;
        };
        let Some(layout) = self.layout else { return };
        let Some(data) = buffer.datas_mut().first_mut() else {
            return;
        };
        if data.type_() == DataType::DmaBuf {
            // Only offered with DRM modifiers, which we do not announce; GPU buffers would need
            // EGL (and unsafe code) to read.
            let msg = "compositor sent DMA-BUF frames, which are not supported".to_string();
            self.outcome.fail(CaptureErrorKind::Unsupported, msg);
            return;
        }
        let chunk = data.chunk();
        // Empty or corrupted chunks carry no picture (e.g. a cursor-only update).
        if chunk.size() == 0 || chunk.flags().contains(ChunkFlags::CORRUPTED) {
            return;
        }
        let row = layout.width as usize * 4;
        let stride = usize::try_from(chunk.stride())
            .ok()
            .filter(|s| *s >= row)
            .unwrap_or(row);
        let (offset, size) = (chunk.offset() as usize, chunk.size() as usize);
        let Some(bytes) = data.data() else {
            let msg = "PipeWire buffer is not mapped".to_string();
            self.outcome.fail(CaptureErrorKind::Backend, msg);
            return;
        };
        if !pack_rows(bytes, offset, size, stride, layout, &mut self.scratch) {
            // Smaller than negotiated: a size change is under way; the new format follows.
            return;
        }
        if self
            .previous
            .as_ref()
            .is_some_and(|p| p.as_slice() == self.scratch.as_slice())
        {
            self.pending = false;
            return;
        }
        if self.too_soon(pts_ns) {
            // Faster than `fps` (a producer that ignored maxFramerate): the tick sends the newest.
            self.pending = true;
            return;
        }
        self.send(pts_ns, layout);
    }

    fn too_soon(&self, now_ns: u64) -> bool {
        self.last_sent_ns
            .is_some_and(|last| now_ns.saturating_sub(last) < self.min_gap_ns)
    }

    /// Sends a held-back picture once the rate allows, so the last change of a burst is kept.
    fn on_tick(&mut self) {
        let now_ns = self.clock.now_ns();
        if let (true, Some(layout)) = (self.pending, self.layout) {
            if !self.too_soon(now_ns) {
                self.send(now_ns, layout);
            }
        }
    }

    /// Sends the picture in `scratch`.
    fn send(&mut self, pts_ns: u64, layout: Layout) {
        self.pending = false;
        self.last_sent_ns = Some(pts_ns);
        let pixels = Arc::new(std::mem::take(&mut self.scratch));
        self.previous = Some(pixels.clone());
        let video = VideoFrame {
            pts_ns,
            width: layout.width,
            height: layout.height,
            stride: layout.width as usize * 4,
            format: PixelFormat::Bgr0,
            data: pixels,
        };
        if self.tx.send(Capture::Video(video)).is_err() {
            self.outcome.receiver_gone.set(true);
            self.outcome.quit();
        }
    }
}

/// Captures `target` from the portal's PipeWire remote until `stop` is set (Ok), nobody
/// receives frames (Ok), or the stream fails or the compositor ends the cast (Err).
pub(super) fn capture(
    remote: OwnedFd,
    target: &PortalStream,
    monitors: usize,
    fps: u32,
    sink: &Sink,
) -> Result<Ended, CaptureError> {
    let unavailable = |what: &str, e: pw::Error| {
        CaptureError::new(
            CaptureErrorKind::BackendUnavailable,
            format!("PipeWire {what}: {e}"),
        )
    };
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).map_err(|e| unavailable("main loop", e))?;
    let context =
        pw::context::ContextRc::new(&mainloop, None).map_err(|e| unavailable("context", e))?;
    let core = context
        .connect_fd_rc(remote, None)
        .map_err(|e| unavailable("connection to the portal's remote", e))?;
    let outcome = Rc::new(Outcome {
        failure: RefCell::new(None),
        receiver_gone: Cell::new(false),
        mainloop: mainloop.downgrade(),
    });

    // Errors on the core object mean the remote went away (the compositor ended the cast).
    let core_outcome = outcome.clone();
    let _core_listener = core
        .add_listener_local()
        .error(move |id, _seq, res, message| {
            if id == pw::core::PW_ID_CORE {
                let msg = format!("PipeWire remote failed: {message} ({res})");
                core_outcome.fail(CaptureErrorKind::DeviceLost, msg);
            } else {
                tracing::debug!(id, res, message, "PipeWire object error");
            }
        })
        .register();

    // No re-linking to another source when the monitor's node goes: the stream ends and the
    // session is restarted (the session manager would otherwise move it silently).
    let properties = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Video",
        *pw::keys::MEDIA_CATEGORY => "Capture",
        *pw::keys::MEDIA_ROLE => "Screen",
        *pw::keys::NODE_DONT_RECONNECT => "true",
    };
    let stream = pw::stream::StreamBox::new(&core, "vigil-screen", properties)
        .map_err(|e| unavailable("stream", e))?;
    let frames = Rc::new(RefCell::new(Frames {
        clock: sink.clock,
        tx: sink.tx.clone(),
        outcome: outcome.clone(),
        node_id: target.node_id,
        monitors,
        reported: sink.reported.clone(),
        opened: sink.opened.clone(),
        layout: None,
        previous: None,
        scratch: Vec::new(),
        min_gap_ns: 1_000_000_000 / u64::from(fps.max(1)) * 9 / 10,
        last_sent_ns: None,
        pending: false,
    }));
    let state_outcome = outcome.clone();
    let stream_listener = stream
        .add_local_listener_with_user_data(frames.clone())
        .state_changed(move |_, _, _old, new| match new {
            StreamState::Error(message) => {
                let msg = format!("PipeWire stream failed: {message}");
                state_outcome.fail(CaptureErrorKind::DeviceLost, msg);
            }
            StreamState::Unconnected => {
                let msg = "the compositor ended the screen cast".to_string();
                state_outcome.fail(CaptureErrorKind::DeviceLost, msg);
            }
            _ => {}
        })
        .param_changed(|_, frames, id, param| frames.borrow_mut().on_format(id, param))
        .process(|stream, frames| frames.borrow_mut().on_process(stream))
        .register()
        .map_err(|e| unavailable("stream listener", e))?;

    let formats = enum_formats(target.size, fps)?;
    let invalid = || CaptureError::new(CaptureErrorKind::Backend, "invalid format pod");
    let capped = Pod::from_bytes(&formats[0]).ok_or_else(invalid)?;
    let fallback = Pod::from_bytes(&formats[1]).ok_or_else(invalid)?;
    stream
        .connect(
            Direction::Input,
            Some(target.node_id),
            StreamFlags::AUTOCONNECT | StreamFlags::MAP_BUFFERS,
            &mut [capped, fallback],
        )
        .map_err(|e| unavailable("stream connection", e))?;

    let tick_stop = sink.stop.clone();
    let tick_outcome = outcome.clone();
    let tick_frames = frames.clone();
    let timer = mainloop.loop_().add_timer(move |_| {
        if tick_stop.load(Ordering::SeqCst) {
            tick_outcome.quit();
        } else {
            tick_frames.borrow_mut().on_tick();
        }
    });
    timer
        .update_timer(Some(TICK), Some(TICK))
        .into_result()
        .map_err(|e| {
            CaptureError::new(CaptureErrorKind::Backend, format!("PipeWire timer: {e}"))
        })?;

    if !sink.stop.load(Ordering::SeqCst) {
        mainloop.run();
    }
    // Read before the stream is torn down: disconnecting reports Unconnected.
    let failure = outcome.failure.borrow_mut().take();
    let receiver_gone = outcome.receiver_gone.get();
    drop(stream_listener);
    let _ = stream.disconnect();
    match failure {
        Some(e) => Err(e),
        None if receiver_gone => Ok(Ended::ReceiverGone),
        None => Ok(Ended::Stopped),
    }
}
