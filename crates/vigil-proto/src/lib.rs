//! Types shared by the Vigil agent and vault: the segment manifest, its signed envelope and the
//! verification of signatures and chains, the upload body, receipts and the API messages. No I/O
//! happens here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod frame;
pub mod key_rotation;
mod manifest;
pub mod mask_rules;
pub mod naming;
pub mod policy;
pub mod policy_locks;
pub mod receipt;
pub mod rekey;
mod screen_mask;
mod signed;
pub mod tombstone;
pub mod upload_auth;

pub use manifest::{
    BlobRef, CaptureEvent, CaptureEventKind, EncoderSettings, ManifestDigest, MaskedSpan,
    MediaKind, SegmentManifest, SignedManifest, Timestamp, TrackInfo, MANIFEST_FORMAT,
};
pub use screen_mask::{Rect, ScreenMask};
pub use signed::{
    device_key_id, sha256_hex, Document, KeyRole, Signed, SignedError, SignedErrorKind,
};
