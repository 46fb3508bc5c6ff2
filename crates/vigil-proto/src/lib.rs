//! Types shared by the Vigil agent and vault: the segment manifest, its signed envelope and the
//! verification of signatures and chains. No I/O happens here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod manifest;
mod signed;

pub use manifest::{
    BlobRef, CaptureEvent, CaptureEventKind, EncoderSettings, MaskedSpan, MediaKind,
    SegmentManifest, Timestamp, TrackInfo, MANIFEST_FORMAT,
};
pub use signed::{
    device_key_id, sha256_hex, ManifestDigest, SignManifestError, SignedManifest,
    VerifyManifestError, VerifyManifestErrorKind,
};
