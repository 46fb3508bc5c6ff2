//! The capture error: one type with a matchable kind, as cpal does.

/// What kind of failure a capture source met; callers branch on this, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureErrorKind {
    /// No such device, or none at all (no microphone, no display).
    DeviceNotFound,
    /// The OS refused access (screen-recording or microphone permission).
    PermissionDenied,
    /// The capture backend (audio server, display server, OS API) cannot be reached.
    BackendUnavailable,
    /// The device went away while capturing.
    DeviceLost,
    /// The backend does not support this on this OS or configuration.
    Unsupported,
    /// Any other backend failure.
    Backend,
}

/// A capture failure with its kind and a description (device names, never media).
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct CaptureError {
    kind: CaptureErrorKind,
    message: String,
}

impl CaptureError {
    /// A new error.
    pub fn new(kind: CaptureErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// The matchable kind.
    pub fn kind(&self) -> CaptureErrorKind {
        self.kind
    }
}
