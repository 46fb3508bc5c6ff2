//! The Objective-C object ScreenCaptureKit calls back, one per display stream: on the streams'
//! dispatch queue it paints each new picture of its display into the desktop canvas they all
//! share, and it records why its stream stopped when the system stops it. The capture thread
//! takes frames out of the shared canvas (see `streams.rs`).
#![allow(unsafe_code)] // Objective-C class definition and CoreMedia calls

use std::sync::{Arc, Mutex, PoisonError};

use objc2::rc::Retained;
use objc2::{define_class, msg_send, AnyThread, DefinedClass};
use objc2_core_graphics::CGDirectDisplayID;
use objc2_core_media::CMSampleBuffer;
use objc2_foundation::{NSError, NSObject, NSObjectProtocol};
use objc2_screen_capture_kit::{SCStream, SCStreamDelegate, SCStreamOutput, SCStreamOutputType};

use super::pixel_buffer::{is_new_picture, with_bgra_image, BgraImage};
use crate::{Clock, DesktopCanvas, VideoFrame};

/// The canvas and when it was last painted: a frame is stamped with its newest picture's time.
struct PaintedCanvas {
    canvas: DesktopCanvas,
    painted_at_ns: u64,
}

/// The desktop picture shared by every display's output (on the dispatch queue) and the
/// capture thread, plus the first reason a stream stopped.
pub(super) struct SharedDesktop {
    clock: Clock,
    painted: Mutex<PaintedCanvas>,
    stop_error: Mutex<Option<String>>,
}

impl SharedDesktop {
    pub(super) fn new(clock: Clock, canvas: DesktopCanvas) -> Arc<Self> {
        Arc::new(Self {
            clock,
            painted: Mutex::new(PaintedCanvas {
                canvas,
                painted_at_ns: 0,
            }),
            stop_error: Mutex::new(None),
        })
    }

    /// The desktop, if any display painted since the last frame, stamped with the newest paint.
    pub(super) fn take_frame(&self) -> Option<VideoFrame> {
        let mut painted = self.painted.lock().unwrap_or_else(PoisonError::into_inner);
        let pts_ns = painted.painted_at_ns;
        painted.canvas.take_frame(pts_ns)
    }

    /// Why the system stopped a stream, once it has.
    pub(super) fn take_stop_error(&self) -> Option<String> {
        self.stop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn paint(&self, index: usize, image: BgraImage<'_>, captured_at_ns: u64) {
        let mut painted = self.painted.lock().unwrap_or_else(PoisonError::into_inner);
        let BgraImage {
            pixels,
            width,
            height,
            stride,
        } = image;
        painted.canvas.paint(index, pixels, width, height, stride);
        // Two displays' callbacks may take the lock out of order: keep stamps increasing.
        painted.painted_at_ns = painted.painted_at_ns.max(captured_at_ns);
    }

    fn stopped(&self, display_id: CGDirectDisplayID, error: &NSError) {
        let message = format!(
            "screen stream of display {display_id} stopped by the system: {} ({} {})",
            error.localizedDescription(),
            error.domain(),
            error.code()
        );
        self.stop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(message);
    }
}

/// What one display's output needs: where it paints, and what to name in errors.
pub(super) struct DisplayOutput {
    desktop: Arc<SharedDesktop>,
    /// The display's index in the canvas layout.
    index: usize,
    display_id: CGDirectDisplayID,
}

impl DisplayOutput {
    fn on_screen_sample(&self, sample: &CMSampleBuffer) {
        let captured_at_ns = self.desktop.clock.now_ns();
        if !is_new_picture(sample) {
            return;
        }
        // SAFETY: `sample` is a valid sample buffer handed to us for the duration of the call.
        let Some(image) = (unsafe { sample.image_buffer() }) else {
            return;
        };
        with_bgra_image(&image, |bgra| {
            self.desktop.paint(self.index, bgra, captured_at_ns)
        });
    }
}

// The ivars are used from the dispatch queue and the capture thread at once.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DisplayOutput>();
};

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and `ScreenOutput` does not implement
    // `Drop`. Its ivars are immutable apart from `Mutex`-guarded state, so the dispatch queue
    // and the capture thread may use them concurrently.
    #[unsafe(super(NSObject))]
    #[name = "VigilScreenOutput"]
    #[ivars = DisplayOutput]
    pub(super) struct ScreenOutput;

    unsafe impl NSObjectProtocol for ScreenOutput {}

    unsafe impl SCStreamOutput for ScreenOutput {
        #[unsafe(method(stream:didOutputSampleBuffer:ofType:))]
        fn stream_did_output_sample_buffer(
            &self,
            _stream: &SCStream,
            sample: &CMSampleBuffer,
            kind: SCStreamOutputType,
        ) {
            if kind == SCStreamOutputType::Screen {
                self.ivars().on_screen_sample(sample);
            }
        }
    }

    unsafe impl SCStreamDelegate for ScreenOutput {
        #[unsafe(method(stream:didStopWithError:))]
        fn stream_did_stop_with_error(&self, _stream: &SCStream, error: &NSError) {
            let output = self.ivars();
            output.desktop.stopped(output.display_id, error);
        }
    }
);

impl ScreenOutput {
    /// The output of display `display_id`, painting at `index` of the desktop's layout.
    pub(super) fn new(
        desktop: Arc<SharedDesktop>,
        index: usize,
        display_id: CGDirectDisplayID,
    ) -> Retained<Self> {
        let this = Self::alloc().set_ivars(DisplayOutput {
            desktop,
            index,
            display_id,
        });
        // SAFETY: `init` is NSObject's designated initialiser and the ivars are set.
        unsafe { msg_send![super(this), init] }
    }
}
