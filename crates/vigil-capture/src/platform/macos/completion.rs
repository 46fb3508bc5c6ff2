//! Bridges ScreenCaptureKit's completion handlers to the calling thread (a channel and a timeout)
//! and maps its errors, so that a missing Screen Recording permission is reported as such.
#![allow(unsafe_code)] // Objective-C blocks and ScreenCaptureKit calls

use std::sync::mpsc;
use std::time::Duration;

use block2::{DynBlock, RcBlock};
use objc2::rc::Retained;
use objc2_core_graphics::{CGMainDisplayID, CGPreflightScreenCaptureAccess};
use objc2_foundation::NSError;
use objc2_screen_capture_kit::{SCShareableContent, SCStreamErrorCode, SCStreamErrorDomain};

use crate::{CaptureError, CaptureErrorKind};

/// ScreenCaptureKit answers in milliseconds; a silent framework must not hang the agent.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(10);

const PERMISSION_HINT: &str = "screen recording is not allowed for this program: grant it in \
    System Settings > Privacy & Security > Screen & System Audio Recording, then restart the agent";

/// Hands the shareable content from ScreenCaptureKit's completion queue to the capture thread.
struct SentContent(Retained<SCShareableContent>);
// SAFETY: SCShareableContent is an immutable snapshot, Objective-C reference counting is atomic,
// and the completion handler gives the object up once it has sent it.
unsafe impl Send for SentContent {}

/// Maps a ScreenCaptureKit error; a refused or missing Screen Recording permission gets its own
/// kind and a message that says how to fix it.
pub(super) fn capture_error(error: &NSError, what: &str, kind: CaptureErrorKind) -> CaptureError {
    // SAFETY: a constant NSString exported by ScreenCaptureKit, valid for the program's life.
    let sc_domain = unsafe { SCStreamErrorDomain };
    let declined = error.domain().isEqualToString(sc_domain)
        && error.code() == SCStreamErrorCode::UserDeclined.0;
    if declined || !CGPreflightScreenCaptureAccess() {
        return CaptureError::new(CaptureErrorKind::PermissionDenied, PERMISSION_HINT);
    }
    CaptureError::new(
        kind,
        format!(
            "{what}: {} ({} {})",
            error.localizedDescription(),
            error.domain(),
            error.code()
        ),
    )
}

fn timed_out(what: &str) -> CaptureError {
    CaptureError::new(
        CaptureErrorKind::BackendUnavailable,
        format!("{what}: ScreenCaptureKit did not answer within {COMPLETION_TIMEOUT:?}"),
    )
}

/// What the system lets this process capture.
pub(super) fn shareable_content() -> Result<Retained<SCShareableContent>, CaptureError> {
    const WHAT: &str = "listing displays";
    // A plain command-line process must touch CoreGraphics before ScreenCaptureKit uses the
    // window server, or SkyLight aborts with CGS_REQUIRE_INIT.
    let _ = CGMainDisplayID();
    let (tx, rx) = mpsc::channel();
    let handler = RcBlock::new(
        move |content: *mut SCShareableContent, error: *mut NSError| {
            // SAFETY: ScreenCaptureKit passes a valid object or null in each argument, alive for
            // this call; the content is retained before the call returns.
            let result = match unsafe { (Retained::retain(content), error.as_ref()) } {
                (Some(content), _) => Ok(SentContent(content)),
                (None, Some(error)) => Err(capture_error(
                    error,
                    WHAT,
                    CaptureErrorKind::BackendUnavailable,
                )),
                (None, None) => Err(CaptureError::new(
                    CaptureErrorKind::BackendUnavailable,
                    "ScreenCaptureKit returned no shareable content",
                )),
            };
            let _ = tx.send(result);
        },
    );
    // SAFETY: the handler has the signature the method expects; it is copied by the framework.
    unsafe { SCShareableContent::getShareableContentWithCompletionHandler(&handler) };
    match rx.recv_timeout(COMPLETION_TIMEOUT) {
        Ok(result) => result.map(|content| content.0),
        Err(_) => Err(timed_out(WHAT)),
    }
}

/// Calls a ScreenCaptureKit method that reports completion through an error-only handler and
/// waits for it.
pub(super) fn wait_for_completion(
    what: &str,
    call: impl FnOnce(&DynBlock<dyn Fn(*mut NSError)>),
) -> Result<(), CaptureError> {
    let (tx, rx) = mpsc::channel();
    let what_owned = what.to_string();
    let handler = RcBlock::new(move |error: *mut NSError| {
        // SAFETY: ScreenCaptureKit passes a valid NSError or null, alive for this call.
        let result = match unsafe { error.as_ref() } {
            Some(error) => Err(capture_error(error, &what_owned, CaptureErrorKind::Backend)),
            None => Ok(()),
        };
        let _ = tx.send(result);
    });
    call(&handler);
    rx.recv_timeout(COMPLETION_TIMEOUT)
        .unwrap_or_else(|_| Err(timed_out(what)))
}
