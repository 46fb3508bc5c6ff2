//! The device's Ed25519 signing key. Until enrollment exists it lives in the spool's config
//! folder, readable by its owner only (0600); enrollment moves it to the OS keystore.

use std::fs;
use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

/// The device's signing key.
pub struct DeviceKey(SigningKey);

/// Why the device key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceKeyError {
    /// Reading or writing the key file failed.
    #[error("device key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file is not a PKCS#8 Ed25519 key (its content is never printed).
    #[error("device key file {0} is not a PKCS#8 Ed25519 private key")]
    Format(String),
    /// The key file can be read by others than its owner.
    #[error("device key file {0} is readable by group or others; expected mode 0600")]
    Permissions(String),
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey({})", self.id())
    }
}

impl DeviceKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// The key's id (see [`vigil_proto::device_key_id`]).
    pub fn id(&self) -> String {
        vigil_proto::device_key_id(&self.0.verifying_key())
    }

    /// The signing key.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The key as PKCS#8 PEM (for a keystore). The text is secret: never log it.
    pub fn to_pkcs8_pem(&self) -> Result<String, DeviceKeyError> {
        self.0
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .map_err(|_| DeviceKeyError::Format("device key".into()))
    }

    /// A key from PKCS#8 PEM text; `origin` names where it came from, for the error.
    pub fn from_pkcs8_pem(pem: &str, origin: &str) -> Result<Self, DeviceKeyError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|_| DeviceKeyError::Format(origin.into()))
    }

    /// Loads the key file at `path` if there is one (`None` when it does not exist).
    pub fn load(path: &Path) -> Result<Option<Self>, DeviceKeyError> {
        if !path.exists() {
            return Ok(None);
        }
        Self::load_or_create(path).map(Some)
    }

    /// Loads the key at `path`, or creates it (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, DeviceKeyError> {
        let io = |source| DeviceKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match fs::read_to_string(path) {
            Ok(pem) => {
                check_private(path)?;
                SigningKey::from_pkcs8_pem(&pem)
                    .map(Self)
                    .map_err(|_| DeviceKeyError::Format(path.display().to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_device_key(path, &key)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }
}

/// Writes a key file atomically, readable by its owner only (0600 in a 0700 folder).
pub fn write_device_key(path: &Path, key: &DeviceKey) -> Result<(), DeviceKeyError> {
    let pem = key.to_pkcs8_pem()?;
    vigil_files::write_private(path, pem.as_bytes()).map_err(|source| DeviceKeyError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Refuses a key file others may read (it was loosened after we wrote it).
fn check_private(path: &Path) -> Result<(), DeviceKeyError> {
    let private = vigil_files::is_private(path).map_err(|source| DeviceKeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    if private {
        Ok(())
    } else {
        Err(DeviceKeyError::Permissions(path.display().to_string()))
    }
}
