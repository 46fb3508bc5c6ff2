//! `vigil-agent rekey`: the device replaces its key without re-enrolling (issue 13 §12). The
//! vault must hear the change signed by the key it knows and by the new one; the device id,
//! team, policy and spool stay.
//!
//! Order, so that no failure leaves the device without a key the vault accepts: the new key
//! goes into the keystore first (the old one kept in memory); then the vault is told; if it
//! refuses or cannot be reached, the old key is put back. A crash between the two leaves the
//! keystore with a key the vault does not know: the agent then reports `unknown_device` and IT
//! re-enrolls it. Segments the old key signed are still accepted for 7 days, and a recorder
//! running through the change keeps using the old key until it restarts.

use std::path::Path;

use vigil_proto::rekey::RekeyRequest;
use vigil_seal::DeviceKey;

use crate::enrollment::{EnrollError, Enrollment};

/// What a re-key did.
#[derive(Debug, Clone)]
pub struct Rekeyed {
    /// The device.
    pub device_id: uuid::Uuid,
    /// The old key's id.
    pub old_key_id: String,
    /// The new key's id.
    pub new_key_id: String,
}

/// Replaces the enrolled device's key in its keystore and at the vault.
pub fn rekey(spool: &Path) -> Result<Rekeyed, EnrollError> {
    let enrollment = Enrollment::load(spool)?.ok_or_else(|| {
        EnrollError::BadAnswer("this device is not enrolled: run `vigil-agent enroll`".into())
    })?;
    let current = enrollment.device_key()?;
    let new = DeviceKey::generate();
    let request = RekeyRequest::sign(
        enrollment.device_id,
        current.signing_key(),
        new.signing_key(),
        time::OffsetDateTime::now_utc(),
    )
    .map_err(|e| EnrollError::BadAnswer(e.to_string()))?;
    let client = enrollment.client()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EnrollError::BadAnswer(format!("runtime: {e}")))?;
    enrollment.key.store(&new)?;
    if let Err(e) = runtime.block_on(client.rekey(&request)) {
        enrollment.key.store(&current)?;
        return Err(e.into());
    }
    let ids = |k: &DeviceKey| vigil_proto::device_key_id(&k.signing_key().verifying_key());
    tracing::info!(key = %ids(&new), "device key replaced");
    Ok(Rekeyed {
        device_id: enrollment.device_id,
        old_key_id: ids(&current),
        new_key_id: ids(&new),
    })
}
