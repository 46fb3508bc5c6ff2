//! A second factor for console accounts (issue 13 §6, PCI DSS 8.4.2): TOTP (RFC 6238, six
//! digits every 30 s, through `totp-rs`). Accounts whose role can hear recordings, destroy
//! them, change policy or manage accounts need one when `[accounts] mfa_required` is on (the
//! default): their console login takes a code, Basic is refused for them (a browser cannot
//! send a code with it; scripts use API tokens), and until they have confirmed a factor their
//! sessions can only enroll one (and change the password, see who they are, log out).
//!
//! The shared secret is stored sealed to the vault's recording identity (age), so the database
//! alone does not hold it; each code opens one login (the last accepted time step is kept, so
//! a code seen once is refused after).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use totp_rs::{Algorithm, Secret, TOTP};
use vigil_vault_store::metadata::StoreError;

use crate::access::{Permission, Role};
use crate::Vault;

/// The issuer shown in authenticator apps.
pub const ISSUER: &str = "Vigil";
const STEP: u64 = 30;
/// Audit action: an account began enrolling a second factor.
pub const ACTION_MFA_STARTED: &str = "user.mfa_enrollment_started";
/// Audit action: an account confirmed its second factor.
pub const ACTION_MFA_ENROLLED: &str = "user.mfa_enrolled";
/// Audit action: a second factor was removed (CLI).
pub const ACTION_MFA_RESET: &str = "user.mfa_reset";

/// Whether accounts of `role` need a second factor (media, policy or account permissions).
pub fn required_for(role: Role) -> bool {
    [
        Permission::Play,
        Permission::Download,
        Permission::Delete,
        Permission::Redact,
        Permission::Policy,
        Permission::Users,
        Permission::RelaxPolicy,
    ]
    .iter()
    .any(|p| role.can(*p))
}

/// Why a second factor could not be enrolled or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MfaError {
    /// The account already has a confirmed factor (`vigil-vault user reset-mfa` removes it).
    #[error(
        "this account already has a confirmed second factor (IT removes a lost one with \
         `vigil-vault user reset-mfa`)"
    )]
    AlreadyEnrolled,
    /// No factor to confirm or check.
    #[error("this account has no second factor; enroll one (POST /v1/mfa/totp)")]
    NotEnrolled,
    /// A login of an account with a factor came without a code.
    #[error("a one-time code from the authenticator app is required")]
    CodeRequired,
    /// The code is wrong, expired, or was used already.
    #[error("wrong, expired or already used one-time code")]
    BadCode,
    /// No such account.
    #[error("no account {0:?}")]
    NoAccount(String),
    /// The stored secret cannot be opened (another vault's identity, corruption).
    #[error("the stored second factor cannot be opened: {0}")]
    Sealed(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an account needs to set up its authenticator app.
#[derive(Debug)]
pub struct NewFactor {
    /// The secret, base32 (to type in).
    pub secret_base32: String,
    /// The `otpauth://` URL (to show as a QR code).
    pub otpauth_url: String,
}

fn totp(secret: Vec<u8>, account: &str) -> Result<TOTP, MfaError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret,
        Some(ISSUER.into()),
        account.into(),
    )
    .map_err(|e| MfaError::Sealed(e.to_string()))
}

fn seal(vault: &Vault, secret: &[u8]) -> Result<String, MfaError> {
    let recipient = vault.keys().recording.to_public();
    let sealed = age::encrypt(&recipient, secret).map_err(|e| MfaError::Sealed(e.to_string()))?;
    Ok(B64.encode(sealed))
}

fn open(vault: &Vault, sealed: &str) -> Result<Vec<u8>, MfaError> {
    let bytes = B64
        .decode(sealed)
        .map_err(|e| MfaError::Sealed(e.to_string()))?;
    // Sealed to whichever recording identity was current when the factor was enrolled.
    let sealed = |e: &dyn std::fmt::Display| MfaError::Sealed(e.to_string());
    let keys = vault.keys();
    let mut reader = age::Decryptor::new_buffered(bytes.as_slice())
        .map_err(|e| sealed(&e))?
        .decrypt(keys.recording_identities())
        .map_err(|e| sealed(&e))?;
    let mut secret = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut secret).map_err(|e| sealed(&e))?;
    Ok(secret)
}

/// Gives `name` a new, unconfirmed factor (replacing an unconfirmed one).
pub fn begin(vault: &Vault, name: &str) -> Result<NewFactor, MfaError> {
    let store = vault.store();
    if store.totp(name)?.is_some_and(|f| f.last_step.is_some()) {
        return Err(MfaError::AlreadyEnrolled);
    }
    let secret = Secret::generate_secret();
    let bytes = secret
        .to_bytes()
        .map_err(|e| MfaError::Sealed(e.to_string()))?;
    let url = totp(bytes.clone(), name)?.get_url();
    // The store replaces only an unconfirmed factor, so a factor confirmed since the check
    // above stays.
    if !store.set_totp(name, Some(&seal(vault, &bytes)?))? {
        return Err(match store.account(name)? {
            Some(_) => MfaError::AlreadyEnrolled,
            None => MfaError::NoAccount(name.into()),
        });
    }
    crate::audit::record(
        store,
        &format!("user:{name}"),
        ACTION_MFA_STARTED,
        Some(name.into()),
        None,
    )?;
    Ok(NewFactor {
        secret_base32: secret.to_encoded().to_string(),
        otpauth_url: url,
    })
}

/// Confirms `name`'s new factor with a first code from the app, and ends the account's other
/// sessions: they were opened with the password alone (`keep`: the confirming session).
pub fn confirm(
    vault: &Vault,
    name: &str,
    code: &str,
    now: u64,
    keep: Option<&str>,
) -> Result<(), MfaError> {
    let store = vault.store();
    let factor = store.totp(name)?.ok_or(MfaError::NotEnrolled)?;
    if factor.last_step.is_some() {
        return Err(MfaError::AlreadyEnrolled);
    }
    accept(vault, name, &factor.sealed_secret, code, now)?;
    store.end_sessions(name, keep)?;
    crate::audit::record(
        store,
        &format!("user:{name}"),
        ACTION_MFA_ENROLLED,
        Some(name.into()),
        None,
    )?;
    Ok(())
}

/// Whether `name` has a confirmed factor.
pub fn enrolled(vault: &Vault, name: &str) -> Result<bool, MfaError> {
    Ok(vault
        .store()
        .totp(name)?
        .is_some_and(|f| f.last_step.is_some()))
}

/// Checks a login's code for `name` (whose factor is confirmed).
pub fn check(vault: &Vault, name: &str, code: Option<&str>, now: u64) -> Result<(), MfaError> {
    let factor = vault.store().totp(name)?.ok_or(MfaError::NotEnrolled)?;
    let code = code
        .filter(|c| !c.trim().is_empty())
        .ok_or(MfaError::CodeRequired)?;
    accept(vault, name, &factor.sealed_secret, code, now)
}

/// Accepts `code` if it is the code of the current step or a neighbour (clock drift), and that
/// step is later than the last one accepted (atomically: a code opens one login).
fn accept(vault: &Vault, name: &str, sealed: &str, code: &str, now: u64) -> Result<(), MfaError> {
    let totp = totp(open(vault, sealed)?, name)?;
    let code = code.trim();
    let current = now / STEP;
    for step in [current.saturating_sub(1), current, current + 1] {
        let expected = totp.generate(step * STEP);
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            return if vault.store().use_totp_step(name, step)? {
                Ok(())
            } else {
                Err(MfaError::BadCode)
            };
        }
    }
    Err(MfaError::BadCode)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Removes `name`'s factor (the command line: a lost phone), audited with the reason.
pub fn reset(
    vault_store: &dyn vigil_vault_store::metadata::MetadataStore,
    name: &str,
    actor: &str,
    reason: &str,
) -> Result<(), MfaError> {
    if !vault_store.set_totp(name, None)? {
        return Err(MfaError::NoAccount(name.into()));
    }
    vault_store.end_sessions(name, None)?;
    crate::audit::record(
        vault_store,
        actor,
        ACTION_MFA_RESET,
        Some(name.into()),
        crate::audit::stated_reason(Some(reason)),
    )?;
    Ok(())
}

/// The secret a [`NewFactor`] shows, for tests and tools that act as the authenticator app.
pub fn code_for(secret_base32: &str, account: &str, at: u64) -> Option<String> {
    let bytes = Secret::Encoded(secret_base32.into()).to_bytes().ok()?;
    Some(totp(bytes, account).ok()?.generate(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_that_need_a_second_factor() {
        let needing: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| required_for(*r))
            .map(Role::as_str)
            .collect();
        assert_eq!(needing, ["supervisor", "qa_analyst", "compliance", "admin"]);
    }
}
