//! Handing the recording identity (the age X25519 private key) to the organization, so it can
//! decrypt sealed blobs offline with `age -d -i`. Brief §4: the identity leaves the vault only
//! on an explicit, audited request with a stated reason.

use age::secrecy::{ExposeSecret, SecretString};

use crate::audit::{self, ACTION_EXPORT_RECORDING_IDENTITY};
use crate::Vault;
use vigil_vault_store::metadata::StoreError;

/// Why the recording identity was not handed out.
#[derive(Debug, thiserror::Error)]
pub enum IdentityExportError {
    /// No reason was stated: the export is refused before anything is revealed.
    #[error("a reason is required to export the recording identity (--reason)")]
    MissingReason,
    /// The audit record could not be written, so the identity is not revealed.
    #[error("cannot write the audit record, the identity is not exported: {0}")]
    Audit(#[source] StoreError),
}

/// The recording identity (`AGE-SECRET-KEY-1…`), after appending an audit record naming
/// `actor` and `reason`. The record is written first: no audit, no key.
pub fn export_recording_identity(
    vault: &Vault,
    actor: &str,
    reason: &str,
) -> Result<SecretString, IdentityExportError> {
    let reason = audit::stated_reason(Some(reason)).ok_or(IdentityExportError::MissingReason)?;
    let recipient = vault.keys().recording.to_public().to_string();
    audit::record(
        vault.store(),
        actor,
        ACTION_EXPORT_RECORDING_IDENTITY,
        Some(recipient),
        Some(reason),
    )
    .map_err(IdentityExportError::Audit)?;
    Ok(SecretString::from(
        vault
            .keys()
            .recording
            .to_string()
            .expose_secret()
            .to_owned(),
    ))
}
