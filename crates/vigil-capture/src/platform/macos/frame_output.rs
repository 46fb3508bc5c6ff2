//! The Objective-C object ScreenCaptureKit calls back: it receives each screen sample buffer on
//! the stream's dispatch queue, copies changed frames into packed `Bgr0` rows and sends them,
//! and records why the stream stopped when the system stops it.
#![allow(unsafe_code)] // Objective-C class definition and CoreMedia/CoreVideo calls

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::Sender;
use objc2::rc::Retained;
use objc2::{define_class, msg_send, AnyThread, DefinedClass};
use objc2_core_foundation::{CFArray, CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_core_media::CMSampleBuffer;
use objc2_core_video::{
    kCVPixelFormatType_32BGRA, kCVReturnSuccess, CVPixelBuffer, CVPixelBufferGetBaseAddress,
    CVPixelBufferGetBytesPerRow, CVPixelBufferGetHeight, CVPixelBufferGetPixelFormatType,
    CVPixelBufferGetWidth, CVPixelBufferIsPlanar, CVPixelBufferLockBaseAddress,
    CVPixelBufferLockFlags, CVPixelBufferUnlockBaseAddress,
};
use objc2_foundation::{NSError, NSObject, NSObjectProtocol, NSString};
use objc2_screen_capture_kit::{
    SCFrameStatus, SCStream, SCStreamDelegate, SCStreamFrameInfoStatus, SCStreamOutput,
    SCStreamOutputType,
};

use crate::{Capture, Clock, PixelFormat, VideoFrame};

/// The last frame sent, kept to drop identical ones (variable frame rate, as on Linux).
struct PreviousFrame {
    width: u32,
    height: u32,
    data: Arc<Vec<u8>>,
}

/// State shared between the capture thread and the stream's dispatch queue.
pub(super) struct FrameSink {
    clock: Clock,
    tx: Sender<Capture>,
    previous: Mutex<Option<PreviousFrame>>,
    stop_error: Mutex<Option<String>>,
    receiver_gone: AtomicBool,
}

impl FrameSink {
    pub(super) fn new(clock: Clock, tx: Sender<Capture>) -> Self {
        Self {
            clock,
            tx,
            previous: Mutex::new(None),
            stop_error: Mutex::new(None),
            receiver_gone: AtomicBool::new(false),
        }
    }

    /// Why the system stopped the stream, once it has.
    pub(super) fn take_stop_error(&self) -> Option<String> {
        self.stop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether nobody receives frames any more.
    pub(super) fn receiver_gone(&self) -> bool {
        self.receiver_gone.load(Ordering::SeqCst)
    }

    fn on_screen_sample(&self, sample: &CMSampleBuffer) {
        let pts_ns = self.clock.now_ns();
        // Idle, blank and suspended buffers carry no new image; a missing status is let through
        // and judged by whether an image buffer is attached.
        if frame_status(sample).is_some_and(|status| status != SCFrameStatus::Complete) {
            return;
        }
        // SAFETY: `sample` is a valid sample buffer handed to us for the duration of the call.
        let Some(image) = (unsafe { sample.image_buffer() }) else {
            return;
        };
        let mut previous = self.previous.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(frame) = copy_if_changed(&image, previous.as_ref()) else {
            return;
        };
        *previous = Some(PreviousFrame {
            width: frame.width,
            height: frame.height,
            data: frame.data.clone(),
        });
        drop(previous);
        let video = VideoFrame {
            pts_ns,
            width: frame.width,
            height: frame.height,
            stride: frame.width as usize * 4,
            format: PixelFormat::Bgr0,
            data: frame.data,
        };
        if self.tx.send(Capture::Video(video)).is_err() {
            self.receiver_gone.store(true, Ordering::SeqCst);
        }
    }

    fn on_stopped(&self, error: &NSError) {
        let message = format!(
            "screen stream stopped by the system: {} ({} {})",
            error.localizedDescription(),
            error.domain(),
            error.code()
        );
        *self
            .stop_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message);
    }
}

// The ivars are used from the dispatch queue and the capture thread at once.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FrameSink>();
};

define_class!(
    // SAFETY: NSObject has no subclassing requirements, and `ScreenOutput` does not implement
    // `Drop`. Its ivars are only touched through `Mutex` and atomics, so the dispatch queue and
    // the capture thread may use them concurrently.
    #[unsafe(super(NSObject))]
    #[name = "VigilScreenOutput"]
    #[ivars = FrameSink]
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
            self.ivars().on_stopped(error);
        }
    }
);

impl ScreenOutput {
    pub(super) fn new(sink: FrameSink) -> Retained<Self> {
        let this = Self::alloc().set_ivars(sink);
        // SAFETY: `init` is NSObject's designated initialiser and the ivars are set.
        unsafe { msg_send![super(this), init] }
    }
}

/// The `SCFrameStatus` ScreenCaptureKit attaches to each video sample, if readable.
fn frame_status(sample: &CMSampleBuffer) -> Option<SCFrameStatus> {
    // SAFETY: `sample` is valid for the call; `false` means nothing is created or mutated.
    let attachments = unsafe { sample.sample_attachments_array(false) }?;
    // SAFETY: CoreMedia documents the sample attachments as a CFArray of CFDictionary keyed by
    // CFString; values are read as the untyped CFType and checked before use.
    let attachments: CFRetained<CFArray<CFDictionary<CFString, CFType>>> =
        unsafe { CFRetained::cast_unchecked(attachments) };
    let first = attachments.get(0)?;
    // SAFETY: the key is an immutable constant NSString of the framework; NSString is toll-free
    // bridged to CFString, so the same object may be used as a CFString.
    let key: &CFString = unsafe {
        let key: *const NSString = SCStreamFrameInfoStatus;
        &*key.cast::<CFString>()
    };
    let value = first.get(key)?;
    let number = value.downcast::<CFNumber>().ok()?;
    number.as_isize().map(SCFrameStatus)
}

struct NewFrame {
    width: u32,
    height: u32,
    data: Arc<Vec<u8>>,
}

/// Locks the pixel buffer for reading and unlocks it when dropped, on every path.
struct ReadLock<'a> {
    buffer: &'a CVPixelBuffer,
}

impl<'a> ReadLock<'a> {
    fn new(buffer: &'a CVPixelBuffer) -> Option<Self> {
        // SAFETY: `buffer` is a valid pixel buffer; the lock is balanced by `Drop`.
        let status =
            unsafe { CVPixelBufferLockBaseAddress(buffer, CVPixelBufferLockFlags::ReadOnly) };
        (status == kCVReturnSuccess).then_some(Self { buffer })
    }
}

impl Drop for ReadLock<'_> {
    fn drop(&mut self) {
        // SAFETY: balances the successful read-only lock taken in `ReadLock::new`.
        unsafe { CVPixelBufferUnlockBaseAddress(self.buffer, CVPixelBufferLockFlags::ReadOnly) };
    }
}

/// Copies the image into packed rows (stride = width * 4), or `None` when it equals the
/// previous frame or is not a single-plane BGRA image.
fn copy_if_changed(buffer: &CVPixelBuffer, previous: Option<&PreviousFrame>) -> Option<NewFrame> {
    if CVPixelBufferGetPixelFormatType(buffer) != kCVPixelFormatType_32BGRA
        || CVPixelBufferIsPlanar(buffer)
    {
        return None;
    }
    let _lock = ReadLock::new(buffer)?;
    let width = CVPixelBufferGetWidth(buffer);
    let height = CVPixelBufferGetHeight(buffer);
    let bytes_per_row = CVPixelBufferGetBytesPerRow(buffer);
    let base = CVPixelBufferGetBaseAddress(buffer)
        .cast::<u8>()
        .cast_const();
    let row_len = width.checked_mul(4)?;
    if base.is_null() || width == 0 || height == 0 || bytes_per_row < row_len {
        return None;
    }
    let span = bytes_per_row
        .checked_mul(height - 1)?
        .checked_add(row_len)?;
    // SAFETY: the base address is locked until `_lock` drops at the end of this function, and a
    // locked single-plane buffer holds `height` rows of `bytes_per_row` bytes, so `span` bytes
    // from `base` are readable; the slice does not outlive the lock.
    let pixels = unsafe { std::slice::from_raw_parts(base, span) };
    let rows = || {
        pixels
            .chunks(bytes_per_row)
            .map(|row| &row[..row_len])
            .take(height)
    };
    let (width, height) = (u32::try_from(width).ok()?, u32::try_from(height).ok()?);
    let unchanged = previous.is_some_and(|p| {
        p.width == width
            && p.height == height
            && p.data
                .chunks_exact(row_len)
                .zip(rows())
                .all(|(a, b)| a == b)
    });
    if unchanged {
        return None;
    }
    let mut data = Vec::with_capacity(row_len * height as usize);
    rows().for_each(|row| data.extend_from_slice(row));
    Some(NewFrame {
        width,
        height,
        data: Arc::new(data),
    })
}
