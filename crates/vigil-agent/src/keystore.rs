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
