//! The media error.

/// What failed in the media stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaErrorKind {
    /// A codec or muxer is missing from the FFmpeg build (libx264, libopus, matroska).
    CodecMissing,
    /// The encoder refused a setting or a frame.
    Encode,
    /// The muxer failed.
    Mux,
    /// Input media could not be read (probe, join).
    Demux,
}

/// A media failure with its kind.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct MediaError {
    kind: MediaErrorKind,
    message: String,
}

impl MediaError {
    pub(crate) fn new(kind: MediaErrorKind, message: impl std::fmt::Display) -> Self {
        Self {
            kind,
            message: message.to_string(),
        }
    }
    /// The encoder refused a setting or a frame.
    pub(crate) fn encode(e: impl std::fmt::Display) -> Self {
        Self::new(MediaErrorKind::Encode, e)
    }

    /// The muxer failed.
    pub(crate) fn mux(e: impl std::fmt::Display) -> Self {
        Self::new(MediaErrorKind::Mux, e)
    }

    /// The matchable kind.
    pub fn kind(&self) -> MediaErrorKind {
        self.kind
    }
}
