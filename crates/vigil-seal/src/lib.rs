//! Sealing of Vigil segments (brief §3–4): `age` encryption of media in memory to the vault's
//! recipients, Ed25519 signing of manifests by the device key, the per-session hash chain, and the
//! offline verification of a spool or an export.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod device_key;
mod seal;
mod verify;

pub use device_key::{write_device_key, DeviceKey, DeviceKeyError};
pub use seal::{open_blob, OpenError, Recipients, RecipientsError, SealError, Sealer};
pub use verify::{verify_tree, Problem, ProblemKind, SessionReport, VerifyReport};
