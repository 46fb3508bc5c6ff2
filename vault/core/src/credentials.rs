//! Secrets people and programs present to the vault: passwords (argon2id), tokens and session
//! cookies (random, stored only as their SHA-256), and the random text they are made of.
//!
//! One module so that every account, API token, enrollment token, session and media link is
//! hashed and checked the same way.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rand::RngCore;

/// Why a password could not be hashed (the hasher's message; never the password).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// `bytes` random bytes from the OS, as URL-safe base64 without padding.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    B64URL.encode(buf)
}

/// SHA-256 (hex) of a token's or cookie's text (trimmed), as stored: the store never holds the
/// secret itself.
pub fn secret_hash(secret: &str) -> String {
    vigil_proto::sha256_hex(secret.trim().as_bytes())
}

/// An argon2id PHC hash of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches a PHC hash; `None` when the stored hash is malformed.
pub fn password_matches(password: &str, phc: &str) -> Option<bool> {
    let hash = PasswordHash::new(phc).ok()?;
    Some(
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
    )
}

/// A hash to verify against when an account does not exist, so that an unknown name takes as
/// long to refuse as a wrong password.
pub fn dummy_password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hash_password(&random_secret(12)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_salted_and_verify() {
        let a = hash_password("hunter2hunter2").unwrap();
        let b = hash_password("hunter2hunter2").unwrap();
        assert_ne!(a, b, "each hash has its own salt");
        assert!(a.starts_with("$argon2id$"));
        assert_eq!(password_matches("hunter2hunter2", &a), Some(true));
        assert_eq!(password_matches("other", &a), Some(false));
        assert_eq!(password_matches("x", "not a hash"), None);
        assert_eq!(password_matches("x", dummy_password_hash()), Some(false));
    }

    #[test]
    fn secrets_are_random_and_stored_as_hashes() {
        let s = random_secret(32);
        assert_eq!(s.len(), 43);
        assert_ne!(s, random_secret(32));
        assert_eq!(secret_hash(&format!(" {s}\n")), secret_hash(&s));
        assert_eq!(secret_hash(&s).len(), 64);
    }
}
