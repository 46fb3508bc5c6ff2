//! Where the enrolled device key lives: the OS keystore (Secret Service on Linux, Keychain on
//! macOS, Credential Manager on Windows, through `keyring`), or, where IT chooses so for
//! headless machines, a file readable only by the agent's user.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vigil_seal::{DeviceKey, DeviceKeyError};

/// The keystore service name of every Vigil entry.
pub const KEYSTORE_SERVICE: &str = "vigil-agent";

/// Where the device key is kept (recorded in the enrollment; not a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyLocation {
    /// An OS keystore entry of service [`KEYSTORE_SERVICE`] and this account name.
    OsKeystore {
        /// The entry's account name (`device-<device id>`).
        account: String,
    },
    /// A PKCS#8 file with mode 0600.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// Why the device key could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeystoreError {
    /// The OS keystore is not available (no Secret Service, locked, denied).
    #[error(
        "the OS keystore is not available ({0}); use --key-store file on machines without one"
    )]
    Unavailable(String),
    /// The entry does not exist (deleted by someone).
    #[error("the device key is missing from the OS keystore (entry {0}); enroll again")]
    Missing(String),
    /// The stored key does not parse, or the key file failed.
    #[error(transparent)]
    Key(#[from] DeviceKeyError),
}

fn keystore_error(e: keyring::Error) -> KeystoreError {
    // The keyring's messages describe the platform failure, never the secret.
    KeystoreError::Unavailable(e.to_string())
}

impl KeyLocation {
    /// Stores `key` here and reads it back to prove it is retrievable.
    pub fn store(&self, key: &DeviceKey) -> Result<(), KeystoreError> {
        match self {
            Self::OsKeystore { account } => {
                let entry =
                    keyring::Entry::new(KEYSTORE_SERVICE, account).map_err(keystore_error)?;
                entry
                    .set_password(&key.to_pkcs8_pem()?)
                    .map_err(keystore_error)?;
                let back = self.load()?;
                if back.id() != key.id() {
                    return Err(KeystoreError::Unavailable(
                        "the keystore returned another key than it was given".into(),
                    ));
                }
                Ok(())
            }
            Self::File { path } => {
                if let Some(existing) = DeviceKey::load(path)? {
                    if existing.id() == key.id() {
                        return Ok(());
                    }
                }
                let _ = std::fs::remove_file(path);
                vigil_seal::write_device_key(path, key)?;
                Ok(())
            }
        }
    }

    /// Loads the key.
    pub fn load(&self) -> Result<DeviceKey, KeystoreError> {
        match self {
            Self::OsKeystore { account } => {
                let entry =
                    keyring::Entry::new(KEYSTORE_SERVICE, account).map_err(keystore_error)?;
                let pem = match entry.get_password() {
                    Ok(pem) => pem,
                    Err(keyring::Error::NoEntry) => {
                        return Err(KeystoreError::Missing(account.clone()))
                    }
                    Err(e) => return Err(keystore_error(e)),
                };
                Ok(DeviceKey::from_pkcs8_pem(
                    &pem,
                    &format!("OS keystore entry {account}"),
                )?)
            }
            Self::File { path } => DeviceKey::load(path)?
                .ok_or_else(|| KeystoreError::Missing(path.display().to_string())),
        }
    }

    /// Deletes the key (after a failed enrollment, or when the device is retired).
    pub fn delete(&self) {
        match self {
            Self::OsKeystore { account } => {
                if let Ok(entry) = keyring::Entry::new(KEYSTORE_SERVICE, account) {
                    let _ = entry.delete_credential();
                }
            }
            Self::File { path } => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The highest policy version a device applied, and the vault policy key that signed it, kept
/// beside the device key (an OS keystore entry, or a 0600 file next to the key file) and not in
/// the spool: a signed but older `policy.json` put back into the spool is then refused across
/// restarts, also while the vault is away, and after a rotation of the vault's policy key the
/// retired key no longer speaks for the vault (`vigil_proto::key_rotation`). Stored as
/// `<version>` or `<version> <policy key, base64>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFloor {
    location: KeyLocation,
}

impl PolicyFloor {
    /// The floor of the device whose key is at `key`.
    pub fn of(key: &KeyLocation) -> Self {
        let location = match key {
            KeyLocation::OsKeystore { account } => KeyLocation::OsKeystore {
                account: format!("{account}.policy-floor"),
            },
            KeyLocation::File { path } => KeyLocation::File {
                path: path.with_extension("policy-floor"),
            },
        };
        Self { location }
    }

    /// The highest version applied (0: none yet).
    pub fn get(&self) -> Result<u64, KeystoreError> {
        Ok(self.state()?.0)
    }

    /// The vault policy key that signed the highest version applied, if kept.
    pub fn policy_key(&self) -> Result<Option<ed25519_dalek::VerifyingKey>, KeystoreError> {
        Ok(self.state()?.1)
    }

    fn state(&self) -> Result<(u64, Option<ed25519_dalek::VerifyingKey>), KeystoreError> {
        let text = match &self.location {
            KeyLocation::OsKeystore { account } => {
                let entry =
                    keyring::Entry::new(KEYSTORE_SERVICE, account).map_err(keystore_error)?;
                match entry.get_password() {
                    Ok(text) => text,
                    Err(keyring::Error::NoEntry) => return Ok((0, None)),
                    Err(e) => return Err(keystore_error(e)),
                }
            }
            KeyLocation::File { path } => match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, None)),
                Err(e) => return Err(KeystoreError::Unavailable(e.to_string())),
            },
        };
        let bad = || KeystoreError::Unavailable("the policy floor is malformed".into());
        let mut parts = text.split_whitespace();
        let version = parts.next().unwrap_or("").parse().map_err(|_| bad())?;
        let key = match parts.next() {
            None => None,
            Some(b64) => {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| bad())?;
                let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
                Some(ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?)
            }
        };
        Ok((version, key))
    }

    /// Raises the floor to `version`, signed by `key` (never lowers it; at the same version,
    /// records the key if it was not kept).
    pub fn raise(
        &self,
        version: u64,
        key: &ed25519_dalek::VerifyingKey,
    ) -> Result<(), KeystoreError> {
        let (floor, kept) = self.state()?;
        if version < floor || (version == floor && kept.as_ref() == Some(key)) {
            return Ok(());
        }
        use base64::Engine as _;
        let text = format!(
            "{version} {}",
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        );
        match &self.location {
            KeyLocation::OsKeystore { account } => keyring::Entry::new(KEYSTORE_SERVICE, account)
                .and_then(|entry| entry.set_password(&text))
                .map_err(keystore_error),
            KeyLocation::File { path } => vigil_files::write_private(path, text.as_bytes())
                .map_err(|e| KeystoreError::Unavailable(e.to_string())),
        }
    }

    /// Removes it (with the device key, when the device is retired).
    pub fn delete(&self) {
        self.location.delete();
    }
}
