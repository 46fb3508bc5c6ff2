//! A device replacing its key without re-enrolling (`POST /v1/devices/rekey`): the same
//! statement ([`DeviceRekey`]) signed by the key the vault knows, which authorizes the change,
//! and by the new key, which proves the device holds it. Both go in one [`RekeyRequest`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signed::check_kind;
use crate::{Document, KeyRole, Signed, SignedError};

/// `kind` of a re-key statement.
pub const REKEY_KIND: &str = "vigil.device-rekey";
/// Its format.
pub const REKEY_FORMAT: u32 = 1;

/// "Device `device_id` now uses `new_public_key`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRekey {
    /// Always [`REKEY_KIND`].
    pub kind: String,
    /// Always [`REKEY_FORMAT`].
    pub format: u32,
    /// The enrolled device.
    pub device_id: Uuid,
    /// The new key (Ed25519, base64).
    pub new_public_key: String,
    /// When it was signed (the vault refuses it 5 minutes later).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: time::OffsetDateTime,
}

impl Document for DeviceRekey {
    const FIELD: &'static str = "rekey";
    const SIGNER: KeyRole = KeyRole::Device;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, REKEY_KIND, self.format, REKEY_FORMAT)?;
        self.new_key().map(drop)
    }
}

impl DeviceRekey {
    /// The new key.
    pub fn new_key(&self) -> Result<VerifyingKey, String> {
        B64.decode(&self.new_public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| "new_public_key is not an Ed25519 public key".to_owned())
    }
}

/// A signed re-key statement.
pub type SignedDeviceRekey = Signed<DeviceRekey>;

/// The body of `POST /v1/devices/rekey`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RekeyRequest {
    /// The statement signed by the device's current key.
    pub by_current: String,
    /// The same statement signed by the new key.
    pub by_new: String,
}

impl RekeyRequest {
    /// A request moving `device_id` from `current` to `new`, issued `at`.
    pub fn sign(
        device_id: Uuid,
        current: &SigningKey,
        new: &SigningKey,
        at: time::OffsetDateTime,
    ) -> Result<Self, SignedError> {
        let statement = DeviceRekey {
            kind: REKEY_KIND.into(),
            format: REKEY_FORMAT,
            device_id,
            new_public_key: B64.encode(new.verifying_key().as_bytes()),
            issued_at: at,
        };
        let text = |s: SignedDeviceRekey| String::from_utf8_lossy(s.as_bytes()).into_owned();
        Ok(Self {
            by_current: text(SignedDeviceRekey::sign(statement.clone(), current)?),
            by_new: text(SignedDeviceRekey::sign(statement, new)?),
        })
    }
}
