//! Private keys at rest.
//!
//! Every private key of a deployment (the recording identity, the policy- and receipt-signing
//! keys, the TLS CA and server keys) is kept in one file, `keys/private.age`: a JSON bundle
//! encrypted with `age`'s passphrase recipient (scrypt, work factor 2^17, then
//! ChaCha20-Poly1305). The passphrase is the *vault key*, which IT supplies in the
//! `VIGIL_VAULT_KEY` environment variable or in a key file (`--key-file`). Because the format
//! is plain `age`, an organization can open the bundle offline with `age -d keys/private.age`.
//! The OS keystore as a third source is still to come.

use std::fmt;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};

/// The environment variable that holds the vault key.
pub const VAULT_KEY_ENV: &str = "VIGIL_VAULT_KEY";
/// The shortest vault key accepted, in bytes.
pub const MIN_VAULT_KEY_LEN: usize = 16;
/// scrypt work factor (log2 N) used when the bundle is written.
pub const SCRYPT_LOG_N: u8 = 17;
/// Highest scrypt work factor accepted when the bundle is read.
const MAX_SCRYPT_LOG_N: u8 = 22;

/// The passphrase that protects the private keys at rest. Never printed.
#[derive(Clone)]
pub struct VaultKey(SecretString);

impl fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKey(..)")
    }
}

/// Why no usable vault key was found.
#[derive(Debug, thiserror::Error)]
pub enum VaultKeyError {
    /// Neither a key file nor the environment variable was given.
    #[error("no vault key: set {VAULT_KEY_ENV} or pass --key-file")]
    Missing,
    /// The key is too short to protect anything.
    #[error("the vault key must be at least {MIN_VAULT_KEY_LEN} bytes long")]
    TooShort,
    /// The key file could not be read.
    #[error("vault key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl VaultKey {
    /// A vault key from text (trailing newlines are dropped).
    pub fn new(text: &str) -> Result<Self, VaultKeyError> {
        let text = text.trim_end_matches(['\r', '\n']);
        if text.len() < MIN_VAULT_KEY_LEN {
            return Err(VaultKeyError::TooShort);
        }
        Ok(Self(SecretString::from(text.to_owned())))
    }

    /// The key from `key_file` when given, else from [`VAULT_KEY_ENV`].
    pub fn resolve(key_file: Option<&Path>) -> Result<Self, VaultKeyError> {
        match key_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| VaultKeyError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::new(&text)
            }
            None => match std::env::var(VAULT_KEY_ENV) {
                Ok(text) => Self::new(&text),
                Err(_) => Err(VaultKeyError::Missing),
            },
        }
    }
}

/// The private keys of a deployment, in memory only.
pub struct PrivateKeys {
    /// The recording identity: decrypts every sealed blob.
    pub recording: age::x25519::Identity,
    /// Signs policy.
    pub policy: SigningKey,
    /// Signs ingest receipts.
    pub receipt: SigningKey,
    /// The TLS CA's private key (PKCS#8 PEM), to issue new server certificates.
    pub tls_ca_key: SecretString,
    /// The TLS server's private key (PKCS#8 PEM).
    pub tls_server_key: SecretString,
}

impl fmt::Debug for PrivateKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKeys(..)")
    }
}

/// Why the private-key bundle could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyBundleError {
    /// Encryption failed.
    #[error("cannot encrypt the private keys: {0}")]
    Encrypt(String),
    /// The vault key is wrong, or the file is damaged (age cannot tell the two apart).
    #[error("cannot decrypt the private keys: wrong vault key or damaged file ({0})")]
    Decrypt(String),
    /// The decrypted bundle is not what this version writes.
    #[error("the private-key bundle is malformed: {0}")]
    Malformed(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    format: u32,
    recording_identity: String,
    policy_key: String,
    receipt_key: String,
    tls_ca_key: String,
    tls_server_key: String,
}

const BUNDLE_FORMAT: u32 = 1;

impl PrivateKeys {
    /// Encrypts the keys with the vault key; returns the `age` file bytes.
    pub fn seal(&self, key: &VaultKey) -> Result<Vec<u8>, KeyBundleError> {
        let bundle = Bundle {
            format: BUNDLE_FORMAT,
            recording_identity: self.recording.to_string().expose_secret().to_owned(),
            policy_key: B64.encode(self.policy.to_bytes()),
            receipt_key: B64.encode(self.receipt.to_bytes()),
            tls_ca_key: self.tls_ca_key.expose_secret().to_owned(),
            tls_server_key: self.tls_server_key.expose_secret().to_owned(),
        };
        let json = SecretString::from(
            serde_json::to_string(&bundle).map_err(|e| KeyBundleError::Encrypt(e.to_string()))?,
        );
        let mut recipient = age::scrypt::Recipient::new(key.0.clone());
        recipient.set_work_factor(SCRYPT_LOG_N);
        age::encrypt(&recipient, json.expose_secret().as_bytes())
            .map_err(|e| KeyBundleError::Encrypt(e.to_string()))
    }

    /// Decrypts a bundle written by [`PrivateKeys::seal`].
    pub fn open(sealed: &[u8], key: &VaultKey) -> Result<Self, KeyBundleError> {
        let mut identity = age::scrypt::Identity::new(key.0.clone());
        identity.set_max_work_factor(MAX_SCRYPT_LOG_N);
        let plain = SecretString::from(
            String::from_utf8(
                age::decrypt(&identity, sealed)
                    .map_err(|e| KeyBundleError::Decrypt(e.to_string()))?,
            )
            .map_err(|_| KeyBundleError::Malformed("not UTF-8".into()))?,
        );
        let bundle: Bundle = serde_json::from_str(plain.expose_secret())
            .map_err(|e| KeyBundleError::Malformed(format!("at line {}", e.line())))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(KeyBundleError::Malformed(format!(
                "format {}",
                bundle.format
            )));
        }
        let recording = bundle
            .recording_identity
            .parse::<age::x25519::Identity>()
            .map_err(|_| KeyBundleError::Malformed("recording identity".into()))?;
        Ok(Self {
            recording,
            policy: signing_key(&bundle.policy_key, "policy key")?,
            receipt: signing_key(&bundle.receipt_key, "receipt key")?,
            tls_ca_key: SecretString::from(bundle.tls_ca_key),
            tls_server_key: SecretString::from(bundle.tls_server_key),
        })
    }
}

fn signing_key(b64: &str, what: &str) -> Result<SigningKey, KeyBundleError> {
    let bytes: [u8; 32] = B64
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| KeyBundleError::Malformed(what.into()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> PrivateKeys {
        PrivateKeys {
            recording: age::x25519::Identity::generate(),
            policy: SigningKey::from_bytes(&[1; 32]),
            receipt: SigningKey::from_bytes(&[2; 32]),
            tls_ca_key: SecretString::from("ca pem".to_owned()),
            tls_server_key: SecretString::from("server pem".to_owned()),
        }
    }

    #[test]
    fn bundle_opens_with_the_vault_key_only() {
        let key = VaultKey::new("correct horse battery staple").unwrap();
        let original = keys();
        let sealed = original.seal(&key).unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        assert!(!String::from_utf8_lossy(&sealed).contains("AGE-SECRET-KEY"));
        let back = PrivateKeys::open(&sealed, &key).unwrap();
        assert_eq!(back.policy.to_bytes(), original.policy.to_bytes());
        assert_eq!(back.receipt.to_bytes(), original.receipt.to_bytes());
        assert_eq!(
            back.recording.to_public().to_string(),
            original.recording.to_public().to_string()
        );
        assert_eq!(back.tls_server_key.expose_secret(), "server pem");
        let wrong = VaultKey::new("incorrect horse battery staple").unwrap();
        assert!(matches!(
            PrivateKeys::open(&sealed, &wrong),
            Err(KeyBundleError::Decrypt(_))
        ));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            VaultKey::new("short\n"),
            Err(VaultKeyError::TooShort)
        ));
    }
}
