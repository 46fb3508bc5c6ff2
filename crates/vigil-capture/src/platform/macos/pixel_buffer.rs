//! Reading ScreenCaptureKit's sample buffers: whether a sample carries a new picture, and its
//! BGRA rows, borrowed from the locked pixel buffer without a copy.
#![allow(unsafe_code)] // CoreMedia and CoreVideo calls

use objc2_core_foundation::{CFArray, CFDictionary, CFNumber, CFRetained, CFString, CFType};
use objc2_core_media::CMSampleBuffer;
use objc2_core_video::{
    kCVPixelFormatType_32BGRA, kCVReturnSuccess, CVPixelBuffer, CVPixelBufferGetBaseAddress,
    CVPixelBufferGetBytesPerRow, CVPixelBufferGetHeight, CVPixelBufferGetPixelFormatType,
    CVPixelBufferGetWidth, CVPixelBufferIsPlanar, CVPixelBufferLockBaseAddress,
    CVPixelBufferLockFlags, CVPixelBufferUnlockBaseAddress,
};
use objc2_foundation::NSString;
use objc2_screen_capture_kit::{SCFrameStatus, SCStreamFrameInfoStatus};

/// Whether the sample holds a new picture. Idle, blank and suspended buffers do not; a missing
/// status is let through and judged by whether an image buffer is attached.
pub(super) fn is_new_picture(sample: &CMSampleBuffer) -> bool {
    frame_status(sample).is_none_or(|status| status == SCFrameStatus::Complete)
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

/// A BGRA picture borrowed from a locked pixel buffer.
pub(super) struct BgraImage<'a> {
    /// `height` rows of `stride` bytes (the last one may end after its pixels).
    pub pixels: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub stride: usize,
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

/// Calls `use_image` with the buffer's pixels while they are locked; does nothing when the
/// buffer is not a single-plane BGRA image or cannot be locked.
pub(super) fn with_bgra_image(buffer: &CVPixelBuffer, use_image: impl FnOnce(BgraImage<'_>)) {
    if CVPixelBufferGetPixelFormatType(buffer) != kCVPixelFormatType_32BGRA
        || CVPixelBufferIsPlanar(buffer)
    {
        return;
    }
    let Some(_lock) = ReadLock::new(buffer) else {
        return;
    };
    let width = CVPixelBufferGetWidth(buffer);
    let height = CVPixelBufferGetHeight(buffer);
    let stride = CVPixelBufferGetBytesPerRow(buffer);
    let base = CVPixelBufferGetBaseAddress(buffer)
        .cast::<u8>()
        .cast_const();
    let Some(row_len) = width.checked_mul(4) else {
        return;
    };
    if base.is_null() || width == 0 || height == 0 || stride < row_len {
        return;
    }
    let Some(span) = stride
        .checked_mul(height - 1)
        .and_then(|rows| rows.checked_add(row_len))
    else {
        return;
    };
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return;
    };
    // SAFETY: the base address is locked until `_lock` drops at the end of this function, and a
    // locked single-plane buffer holds `height` rows of `stride` bytes, so `span` bytes from
    // `base` are readable; the slice is only lent to `use_image`, which cannot keep it.
    let pixels = unsafe { std::slice::from_raw_parts(base, span) };
    use_image(BgraImage {
        pixels,
        width,
        height,
        stride,
    });
}
