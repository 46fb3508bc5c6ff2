//! Device keys replaced without re-enrolling (issue 13 §12): the device keeps its id, team and
//! recordings; the old key is kept, with when it was replaced, so the vault can still tell
//! what it signed (manifests waiting in a spool) for a grace period decided above the store.

use uuid::Uuid;

use super::{DeviceRecord, StoreError};

/// A key a device used before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetiredDeviceKey {
    /// The device.
    pub device_id: Uuid,
    /// The old Ed25519 public key.
    pub public_key: [u8; 32],
    /// Its id (`vigil_proto::device_key_id`).
    pub key_id: String,
    /// When the device replaced it, Unix seconds.
    pub retired_at: i64,
}

/// What became of a re-key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyOutcome {
    /// The device now has the new key.
    Rekeyed,
    /// The device's key is no longer the one the request was signed with (another re-key
    /// came first), or the device is gone.
    KeyChanged,
    /// The new key is already some device's, current or retired.
    KeyInUse,
}

/// The device-key operations of the metadata store.
pub trait DeviceKeyStore {
    /// In one transaction: if device `id` still has key `current`, keeps it as retired at
    /// `at` and gives the device `new` (id `new_key_id`).
    fn rekey_device(
        &self,
        id: Uuid,
        current: &[u8; 32],
        new: &[u8; 32],
        new_key_id: &str,
        at: i64,
    ) -> Result<RekeyOutcome, StoreError>;
    /// The device that used `public_key` before, and when it stopped.
    fn device_by_retired_key(
        &self,
        public_key: &[u8; 32],
    ) -> Result<Option<(DeviceRecord, i64)>, StoreError>;
    /// Every retired key, oldest first.
    fn retired_device_keys(&self) -> Result<Vec<RetiredDeviceKey>, StoreError>;
}

impl<T: DeviceKeyStore + ?Sized> DeviceKeyStore for Box<T> {
    fn rekey_device(
        &self,
        id: Uuid,
        current: &[u8; 32],
        new: &[u8; 32],
        new_key_id: &str,
        at: i64,
    ) -> Result<RekeyOutcome, StoreError> {
        (**self).rekey_device(id, current, new, new_key_id, at)
    }
    fn device_by_retired_key(
        &self,
        public_key: &[u8; 32],
    ) -> Result<Option<(DeviceRecord, i64)>, StoreError> {
        (**self).device_by_retired_key(public_key)
    }
    fn retired_device_keys(&self) -> Result<Vec<RetiredDeviceKey>, StoreError> {
        (**self).retired_device_keys()
    }
}
