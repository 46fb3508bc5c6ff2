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
/// How long after a rotation ingest still accepts blobs sealed to the retired recording
/// identity (an agent offline since then seals to it until its next policy).
pub const RETIRED_RECORDING_GRACE_DAYS: i64 = 30;
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
    /// What rotation left behind (`vigil-vault keys rotate`).
    pub history: KeyHistory,
}

/// When each key was made, and the keys rotation replaced.
#[derive(Default)]
pub struct KeyHistory {
    /// When the current recording identity, policy and receipt keys were made (Unix seconds;
    /// 0: before this was kept, the deployment's creation stands for it).
    pub recording_created_at: i64,
    /// See `recording_created_at`.
    pub policy_created_at: i64,
    /// See `recording_created_at`.
    pub receipt_created_at: i64,
    /// Recording identities replaced, oldest first: kept to open what was sealed to them.
    pub retired_recording: Vec<RetiredIdentity>,
    /// Receipt keys replaced (public halves), oldest first: receipts they signed still verify.
    pub retired_receipt_keys: Vec<RetiredKey>,
    /// Policy keys replaced (public halves), oldest first.
    pub retired_policy_keys: Vec<RetiredKey>,
    /// Every signed key endorsement, oldest first (`vigil_proto::key_rotation`).
    pub endorsements: Vec<String>,
}

/// A recording identity rotation replaced.
pub struct RetiredIdentity {
    /// The identity.
    pub identity: age::x25519::Identity,
    /// When it was replaced (Unix seconds).
    pub retired_at: i64,
}

/// The public half of a signing key rotation replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// Ed25519, base64.
    pub public_key: String,
    /// When it was made (Unix seconds; 0: unknown).
    pub created_at: i64,
    /// When it was replaced (Unix seconds).
    pub retired_at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredIdentityText {
    identity: String,
    retired_at: i64,
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
    // Format 2: key rotation.
    #[serde(default)]
    recording_created_at: i64,
    #[serde(default)]
    policy_created_at: i64,
    #[serde(default)]
    receipt_created_at: i64,
    #[serde(default)]
    retired_recording: Vec<RetiredIdentityText>,
    #[serde(default)]
    retired_receipt_keys: Vec<RetiredKey>,
    #[serde(default)]
    retired_policy_keys: Vec<RetiredKey>,
    #[serde(default)]
    endorsements: Vec<String>,
}

/// The format written; format 1 (no history) is still read.
const BUNDLE_FORMAT: u32 = 2;

impl PrivateKeys {
    /// Every recording identity held, the current one first: what opens a sealed blob.
    pub fn recording_identities(&self) -> impl Iterator<Item = &dyn age::Identity> {
        std::iter::once(&self.recording as &dyn age::Identity).chain(
            self.history
                .retired_recording
                .iter()
                .rev()
                .map(|r| &r.identity as &dyn age::Identity),
        )
    }

    /// The recording identities ingest accepts blobs sealed to: the current one, and those
    /// retired less than [`RETIRED_RECORDING_GRACE_DAYS`] before `now` (Unix seconds), for
    /// agents that have not yet had the policy naming the new recipient.
    pub fn identities_for_ingest(&self, now: i64) -> Vec<&age::x25519::Identity> {
        let grace = RETIRED_RECORDING_GRACE_DAYS * 86_400;
        std::iter::once(&self.recording)
            .chain(
                self.history
                    .retired_recording
                    .iter()
                    .filter(|r| now - r.retired_at < grace)
                    .map(|r| &r.identity),
            )
            .collect()
    }

    /// Encrypts the keys with the vault key; returns the `age` file bytes.
    pub fn seal(&self, key: &VaultKey) -> Result<Vec<u8>, KeyBundleError> {
        let bundle = Bundle {
            format: BUNDLE_FORMAT,
            recording_identity: self.recording.to_string().expose_secret().to_owned(),
            policy_key: B64.encode(self.policy.to_bytes()),
            receipt_key: B64.encode(self.receipt.to_bytes()),
            tls_ca_key: self.tls_ca_key.expose_secret().to_owned(),
            tls_server_key: self.tls_server_key.expose_secret().to_owned(),
            recording_created_at: self.history.recording_created_at,
            policy_created_at: self.history.policy_created_at,
            receipt_created_at: self.history.receipt_created_at,
            retired_recording: self
                .history
                .retired_recording
                .iter()
                .map(|r| RetiredIdentityText {
                    identity: r.identity.to_string().expose_secret().to_owned(),
                    retired_at: r.retired_at,
                })
                .collect(),
            retired_receipt_keys: self.history.retired_receipt_keys.clone(),
            retired_policy_keys: self.history.retired_policy_keys.clone(),
            endorsements: self.history.endorsements.clone(),
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
        if !(1..=BUNDLE_FORMAT).contains(&bundle.format) {
            return Err(KeyBundleError::Malformed(format!(
                "format {}",
                bundle.format
            )));
        }
        let recording = bundle
            .recording_identity
            .parse::<age::x25519::Identity>()
            .map_err(|_| KeyBundleError::Malformed("recording identity".into()))?;
        let retired_recording = bundle
            .retired_recording
            .into_iter()
            .map(|r| {
                Ok(RetiredIdentity {
                    identity: r.identity.parse().map_err(|_| {
                        KeyBundleError::Malformed("a retired recording identity".into())
                    })?,
                    retired_at: r.retired_at,
                })
            })
            .collect::<Result<_, KeyBundleError>>()?;
        Ok(Self {
            recording,
            policy: signing_key(&bundle.policy_key, "policy key")?,
            receipt: signing_key(&bundle.receipt_key, "receipt key")?,
            tls_ca_key: SecretString::from(bundle.tls_ca_key),
            tls_server_key: SecretString::from(bundle.tls_server_key),
            history: KeyHistory {
                recording_created_at: bundle.recording_created_at,
                policy_created_at: bundle.policy_created_at,
                receipt_created_at: bundle.receipt_created_at,
                retired_recording,
                retired_receipt_keys: bundle.retired_receipt_keys,
                retired_policy_keys: bundle.retired_policy_keys,
                endorsements: bundle.endorsements,
            },
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
            history: KeyHistory {
                recording_created_at: 5,
                retired_recording: vec![RetiredIdentity {
                    identity: age::x25519::Identity::generate(),
                    retired_at: 4,
                }],
                endorsements: vec!["e".into()],
                ..Default::default()
            },
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
        assert_eq!(back.history.recording_created_at, 5);
        assert_eq!(back.history.endorsements, vec!["e".to_owned()]);
        assert_eq!(
            back.history.retired_recording[0]
                .identity
                .to_public()
                .to_string(),
            original.history.retired_recording[0]
                .identity
                .to_public()
                .to_string()
        );
        let wrong = VaultKey::new("incorrect horse battery staple").unwrap();
        assert!(matches!(
            PrivateKeys::open(&sealed, &wrong),
            Err(KeyBundleError::Decrypt(_))
        ));
    }

    #[test]
    fn a_retired_identity_opens_uploads_for_the_grace_period_only() {
        let mut k = keys();
        k.history.retired_recording[0].retired_at = 1_000_000;
        let day = 86_400;
        let within = 1_000_000 + (RETIRED_RECORDING_GRACE_DAYS - 1) * day;
        let after = 1_000_000 + RETIRED_RECORDING_GRACE_DAYS * day;
        assert_eq!(k.identities_for_ingest(within).len(), 2);
        assert_eq!(k.identities_for_ingest(after).len(), 1);
        // Opening what was stored never expires.
        assert_eq!(k.recording_identities().count(), 2);
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            VaultKey::new("short\n"),
            Err(VaultKeyError::TooShort)
        ));
    }
}
