//! Who may call the vault's operator API (`GET /v1/gaps`): console accounts by HTTP Basic
//! authentication over TLS, checked against their argon2id hash. Today only `admin` accounts
//! pass; the roles of brief §6 (supervisor, QA, compliance) will each get their permissions.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::store::{StoreError, UserRecord};
use crate::Vault;

/// Why a request was not authorised.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No or malformed credentials.
    #[error("authentication required")]
    Missing,
    /// Unknown account or wrong password.
    #[error("invalid credentials")]
    Invalid,
    /// The account's role may not do this.
    #[error("the account's role may not do this")]
    Forbidden,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks an `Authorization: Basic …` header value and that the account is an admin.
pub fn require_admin(vault: &Vault, authorization: Option<&str>) -> Result<UserRecord, AuthError> {
    let encoded = authorization
        .and_then(|h| h.strip_prefix("Basic "))
        .ok_or(AuthError::Missing)?;
    let decoded = B64
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(AuthError::Missing)?;
    let (name, password) = decoded.split_once(':').ok_or(AuthError::Missing)?;
    let user = vault.store().user(name)?.ok_or(AuthError::Invalid)?;
    let hash = PasswordHash::new(&user.password_hash)
        .map_err(|_| StoreError::Corrupt(format!("password hash of {name}")))?;
    Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .map_err(|_| AuthError::Invalid)?;
    if user.role != "admin" {
        return Err(AuthError::Forbidden);
    }
    Ok(user)
}
