//! Enrollment (`POST /v1/enroll`): a one-use token turns a device key into an enrolled device.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use uuid::Uuid;
pub use vigil_proto::api::{EnrollRequest, EnrollResponse};

use crate::Vault;
use vigil_vault_store::metadata::{DeviceRecord, EnrollOutcome, StoreError};

/// Why a token was refused (the client only learns "invalid token").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No such token.
    Unknown,
    /// Used before.
    Used,
    /// Expired.
    Expired,
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// A field is malformed.
    #[error("bad enrollment request: {0}")]
    BadRequest(String),
    /// The token is unknown, used or expired.
    #[error("invalid enrollment token ({0:?})")]
    InvalidToken(TokenRefusal),
    /// The key belongs to a revoked device.
    #[error("this device key was revoked")]
    Revoked,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses a 32-byte Ed25519 public key given as base64 or hex; refuses weak keys.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, EnrollError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()
    } else {
        B64.decode(text).ok()
    };
    let bytes: [u8; 32] = bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EnrollError::BadRequest("device_public_key is not 32 bytes".into()))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| EnrollError::BadRequest("device_public_key is not a valid key".into()))?;
    if key.is_weak() {
        return Err(EnrollError::BadRequest(
            "device_public_key is a weak key".into(),
        ));
    }
    Ok(key)
}

fn check_label(name: &str, value: &str) -> Result<(), EnrollError> {
    if value.is_empty() || value.len() > 255 || value.chars().any(char::is_control) {
        return Err(EnrollError::BadRequest(format!(
            "{name} must be 1 to 255 printable characters"
        )));
    }
    Ok(())
}

/// Enrolls a device. Re-enrolling a key that is already enrolled (a reinstall) uses up the new
/// token and returns the same device id.
pub fn enroll(vault: &Vault, request: &EnrollRequest) -> Result<EnrollResponse, EnrollError> {
    let key = parse_public_key(&request.device_public_key)?;
    check_label("hostname", &request.hostname)?;
    check_label("user", &request.user)?;
    let now = crate::clock::now().unix_timestamp();
    let candidate = DeviceRecord {
        id: Uuid::new_v4(),
        public_key: key.to_bytes(),
        key_id: vigil_proto::device_key_id(&key),
        hostname: request.hostname.clone(),
        user: request.user.clone(),
        team: None,
        enrolled_at: now,
        revoked_at: None,
    };
    let hash = crate::credentials::secret_hash(&request.token);
    let outcome = vault.store().enroll(&hash, now, &candidate)?;
    let reenrolled = matches!(outcome, EnrollOutcome::AlreadyEnrolled(_));
    let device = match outcome {
        EnrollOutcome::Enrolled(d) => {
            tracing::info!(device = %d.id, key = %d.key_id, host = %d.hostname, "device enrolled");
            d
        }
        EnrollOutcome::AlreadyEnrolled(d) => {
            tracing::info!(device = %d.id, "device key enrolled again");
            d
        }
        EnrollOutcome::UnknownToken => {
            return Err(EnrollError::InvalidToken(TokenRefusal::Unknown))
        }
        EnrollOutcome::TokenUsed => return Err(EnrollError::InvalidToken(TokenRefusal::Used)),
        EnrollOutcome::TokenExpired => {
            return Err(EnrollError::InvalidToken(TokenRefusal::Expired))
        }
        EnrollOutcome::KeyRevoked => return Err(EnrollError::Revoked),
    };
    crate::audit::record(
        vault.store(),
        &format!("device:{}", device.id),
        crate::audit::ACTION_DEVICE_ENROLL,
        Some(format!(
            "{} host={} user={} team={}",
            device.id,
            device.hostname,
            device.user,
            device.team.as_deref().unwrap_or("-")
        )),
        reenrolled.then(|| "key already enrolled (reinstall)".to_owned()),
    )?;
    Ok(EnrollResponse {
        device_id: device.id,
        policy_public_key: vault.policy_public_key(),
        receipt_public_key: vault.receipt_public_key(),
        recipients: vault.recipients(),
    })
}
