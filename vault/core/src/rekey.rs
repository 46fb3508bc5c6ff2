//! A device replacing its key without re-enrolling (issue 13 §12; `POST /v1/devices/rekey`,
//! `vigil-agent rekey`). The request carries one statement signed by the device's current key
//! (the authority: only the key the vault knows may name its successor) and by the new key
//! (proof that the device holds it). The device keeps its id, team, policy and recordings.
//!
//! The old key stays good for [`RETIRED_DEVICE_KEY_GRACE_DAYS`]: segments sealed and signed
//! before the change still wait in the spool, and an agent that was recording when the key
//! changed keeps signing with the old one until it restarts. After that, only the new key.

use uuid::Uuid;
use vigil_proto::rekey::{RekeyRequest, SignedDeviceRekey};
use vigil_vault_store::metadata::{DeviceRecord, MetadataStore, RekeyOutcome, StoreError};

use crate::Vault;

/// How long a replaced device key is still believed.
pub const RETIRED_DEVICE_KEY_GRACE_DAYS: i64 = 7;
/// Audit action: a device changed its key (target: `old key id -> new key id`).
pub const ACTION_DEVICE_REKEY: &str = "device.rekey";
/// How far from the vault's clock a re-key statement may be signed.
const FRESH_SECONDS: i64 = 300;

/// Why a re-key was refused.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    /// Not a re-key request.
    #[error("malformed re-key request: {0}")]
    Malformed(String),
    /// A signature does not verify.
    #[error("a re-key statement's signature does not verify: {0}")]
    BadSignature(String),
    /// The current key is no enrolled device's key.
    #[error("unknown device")]
    UnknownDevice,
    /// The device is revoked.
    #[error("device {0} is revoked")]
    Revoked(Uuid),
    /// The statements differ, name another device, or the new key did not sign.
    #[error("the re-key statements disagree: {0}")]
    Mismatch(String),
    /// Signed too long ago (a replay) or in the future.
    #[error("re-key statement signed at {0}, too far from the vault's clock")]
    Stale(i64),
    /// The new key is some device's already.
    #[error("the new key is already in use")]
    KeyInUse,
    /// The device's key changed since the request was signed.
    #[error("the device's key changed since this was signed")]
    KeyChanged,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RekeyError {
    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            RekeyError::Malformed(_) => "malformed",
            RekeyError::BadSignature(_) => "bad_signature",
            RekeyError::UnknownDevice => "unknown_device",
            RekeyError::Revoked(_) => "revoked_device",
            RekeyError::Mismatch(_) => "mismatch",
            RekeyError::Stale(_) => "stale",
            RekeyError::KeyInUse => "key_in_use",
            RekeyError::KeyChanged => "key_changed",
            RekeyError::Store(_) => "internal",
        }
    }
}

/// The device whose key `public_key` is, or was until less than the grace period before
/// `now` (Unix seconds). Every device-signed request is attributed through this.
pub fn device_for_key(
    store: &dyn MetadataStore,
    public_key: &[u8; 32],
    now: i64,
) -> Result<Option<DeviceRecord>, StoreError> {
    if let Some(device) = store.device_by_key(public_key)? {
        return Ok(Some(device));
    }
    Ok(store
        .device_by_retired_key(public_key)?
        .filter(|(_, retired_at)| within_grace(*retired_at, now))
        .map(|(device, _)| device))
}

fn within_grace(retired_at: i64, now: i64) -> bool {
    now - retired_at < RETIRED_DEVICE_KEY_GRACE_DAYS * 86_400
}

/// Checks and applies a re-key request; returns the device with its new key.
pub fn rekey(vault: &Vault, body: &[u8]) -> Result<DeviceRecord, RekeyError> {
    let request: RekeyRequest =
        serde_json::from_slice(body).map_err(|e| RekeyError::Malformed(e.to_string()))?;
    let verify = |text: &str| {
        SignedDeviceRekey::verify(text.as_bytes(), None).map_err(|e| match e.kind() {
            vigil_proto::SignedErrorKind::BadSignature => RekeyError::BadSignature(e.to_string()),
            _ => RekeyError::Malformed(e.to_string()),
        })
    };
    let by_current = verify(&request.by_current)?;
    let by_new = verify(&request.by_new)?;
    let statement = &by_current.document;
    if by_new.document != *statement {
        return Err(RekeyError::Mismatch("the two statements differ".into()));
    }
    let new_key = statement.new_key().map_err(RekeyError::Malformed)?;
    if by_new.signer != new_key {
        return Err(RekeyError::Mismatch(
            "the new key did not sign the statement".into(),
        ));
    }
    let now = crate::clock::now().unix_timestamp();
    let signed_at = statement.issued_at.unix_timestamp();
    if (signed_at - now).abs() > FRESH_SECONDS {
        return Err(RekeyError::Stale(signed_at));
    }
    // Only the key the vault knows now may name its successor, never a retired one.
    let store = vault.store();
    let device = store
        .device_by_key(by_current.signer.as_bytes())?
        .ok_or(RekeyError::UnknownDevice)?;
    if device.id != statement.device_id {
        return Err(RekeyError::Mismatch(format!(
            "the statement names device {}",
            statement.device_id
        )));
    }
    if device.revoked_at.is_some() {
        return Err(RekeyError::Revoked(device.id));
    }
    let new_key_id = vigil_proto::device_key_id(&new_key);
    match store.rekey_device(
        device.id,
        by_current.signer.as_bytes(),
        new_key.as_bytes(),
        &new_key_id,
        now,
    )? {
        RekeyOutcome::Rekeyed => {}
        RekeyOutcome::KeyChanged => return Err(RekeyError::KeyChanged),
        RekeyOutcome::KeyInUse => return Err(RekeyError::KeyInUse),
    }
    crate::audit::record(
        store,
        &format!("device:{}", device.id),
        ACTION_DEVICE_REKEY,
        Some(format!("{} -> {new_key_id}", device.key_id)),
        None,
    )?;
    tracing::info!(device = %device.id, key = %new_key_id, "device key replaced");
    Ok(DeviceRecord {
        public_key: new_key.to_bytes(),
        key_id: new_key_id,
        ..device
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_key_is_believed_for_the_grace_period_only() {
        let day = 86_400;
        assert!(within_grace(
            1_000,
            1_000 + (RETIRED_DEVICE_KEY_GRACE_DAYS - 1) * day
        ));
        assert!(!within_grace(
            1_000,
            1_000 + RETIRED_DEVICE_KEY_GRACE_DAYS * day
        ));
    }
}
