//! The PipeWire side: connects to the portal's remote and opens one stream per shared monitor
//! on it, each negotiating raw BGRx/BGRA (or RGBx/RGBA, swizzled here) at its monitor's size
//! and at most `fps` frames a second. Every buffer is painted into the shared desktop picture
//! (`desktop.rs`), which a timer sends at most `fps` times a second.

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use pipewire as pw;
use pw::spa;
use pw::stream::{Stream, StreamBox, StreamFlags, StreamListener, StreamState};
use spa::buffer::{ChunkFlags, DataType};
use spa::param::ParamType;
use spa::pod::Pod;
use spa::utils::Direction;

use super::desktop::Desktop;
use super::format::{enum_formats, negotiated};
use super::portal::PortalStream;
use super::sink::Sink;
use crate::{CaptureError, CaptureErrorKind, Clock};

/// How often the main loop checks the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

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

/// State of one monitor stream's callbacks (they run on this thread, inside the main loop).
struct MonitorStream {
    /// The monitor's index in the portal's list and in the desktop layout.
    index: usize,
    node_id: u32,
    clock: Clock,
    desktop: Rc<RefCell<Desktop>>,
    outcome: Rc<Outcome>,
}

impl MonitorStream {
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
        tracing::info!(
            node = self.node_id,
            width = layout.width,
            height = layout.height,
            format = ?info.format(),
            max_fps = info.max_framerate().num,
            "screen-cast stream negotiated"
        );
        self.desktop.borrow_mut().set_format(self.index, layout);
    }

    fn on_process(&mut self, stream: &Stream) {
        let captured_at_ns = self.clock.now_ns();
        let Some(mut buffer) = stream.dequeue_buffer() else {
            return;
        };
        let mut desktop = self.desktop.borrow_mut();
        let Some(layout) = desktop.layout(self.index) else {
            return;
        };
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
        // A short buffer means a size change is under way; the new format follows.
        desktop.receive(self.index, captured_at_ns, bytes, (offset, size, stride));
    }
}

/// A connected monitor stream; its listener must be dropped before the stream.
struct OpenStream<'c> {
    listener: StreamListener<MonitorStream>,
    stream: StreamBox<'c>,
}

fn unavailable(what: &str, e: pw::Error) -> CaptureError {
    CaptureError::new(
        CaptureErrorKind::BackendUnavailable,
        format!("PipeWire {what}: {e}"),
    )
}

/// Creates and connects the stream of monitor `index` (`target`).
fn open_stream<'c>(
    core: &'c pw::core::Core,
    target: &PortalStream,
    fps: u32,
    callbacks: MonitorStream,
) -> Result<OpenStream<'c>, CaptureError> {
    // No re-linking to another source when the monitor's node goes: the stream ends and the
    // session is restarted (the session manager would otherwise move it silently).
    let properties = pw::properties::properties! {
        *pw::keys::MEDIA_TYPE => "Video",
        *pw::keys::MEDIA_CATEGORY => "Capture",
        *pw::keys::MEDIA_ROLE => "Screen",
        *pw::keys::NODE_DONT_RECONNECT => "true",
    };
    let stream = StreamBox::new(
        core,
        &format!("vigil-screen-{}", callbacks.index),
        properties,
    )
    .map_err(|e| unavailable("stream", e))?;
    let state_outcome = callbacks.outcome.clone();
    let listener = stream
        .add_local_listener_with_user_data(callbacks)
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
        .param_changed(|_, monitor, id, param| monitor.on_format(id, param))
        .process(|stream, monitor| monitor.on_process(stream))
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
    Ok(OpenStream { listener, stream })
}

/// Captures every monitor in `targets` from the portal's PipeWire remote into one desktop
/// picture until `stop` is set (Ok), nobody receives frames (Ok), or a stream fails or the
/// compositor ends the cast (Err).
pub(super) fn capture(
    remote: OwnedFd,
    targets: &[PortalStream],
    fps: u32,
    sink: &Sink,
) -> Result<Ended, CaptureError> {
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

    let desktop = Rc::new(RefCell::new(Desktop::new(sink, targets)));
    let mut streams = Vec::with_capacity(targets.len());
    for (index, target) in targets.iter().enumerate() {
        let callbacks = MonitorStream {
            index,
            node_id: target.node_id,
            clock: sink.clock,
            desktop: desktop.clone(),
            outcome: outcome.clone(),
        };
        streams.push(open_stream(&core, target, fps, callbacks)?);
    }

    let stop = sink.stop.clone();
    let stop_outcome = outcome.clone();
    let stop_timer = mainloop.loop_().add_timer(move |_| {
        if stop.load(Ordering::SeqCst) {
            stop_outcome.quit();
        }
    });
    // The frame timer alone sends: however many monitors paint, the rate stays at `fps`.
    let frame_outcome = outcome.clone();
    let frame_desktop = desktop.clone();
    let frame_timer = mainloop.loop_().add_timer(move |_| {
        if !frame_desktop.borrow_mut().send_frame() {
            frame_outcome.receiver_gone.set(true);
            frame_outcome.quit();
        }
    });
    let frame_every = Duration::from_secs(1) / fps.max(1);
    for (timer, every) in [(&stop_timer, STOP_POLL), (&frame_timer, frame_every)] {
        timer
            .update_timer(Some(every), Some(every))
            .into_result()
            .map_err(|e| {
                CaptureError::new(CaptureErrorKind::Backend, format!("PipeWire timer: {e}"))
            })?;
    }

    if !sink.stop.load(Ordering::SeqCst) {
        mainloop.run();
    }
    // Read before the streams are torn down: disconnecting reports Unconnected.
    let failure = outcome.failure.borrow_mut().take();
    let receiver_gone = outcome.receiver_gone.get();
    for open in streams {
        drop(open.listener);
        let _ = open.stream.disconnect();
    }
    match failure {
        Some(e) => Err(e),
        None if receiver_gone => Ok(Ended::ReceiverGone),
        None => Ok(Ended::Stopped),
    }
}
