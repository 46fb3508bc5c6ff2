//! Enrollment (`vigil-agent enroll`): the device key is registered with the vault once, with a
//! one-use token from IT, and moves to the OS keystore. The vault answers with the device id,
//! its policy and receipt keys and the recording recipients; the agent keeps that answer in
//! `<spool>/config/enrollment.json` (public facts only: no secret goes into a file) and from
//! then on seals to those recipients and uploads to that vault.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_proto::api::EnrollRequest;
use vigil_seal::{DeviceKey, DeviceKeyError, Recipients, RecipientsError};
use vigil_spool::client::{ClientError, RequestError, VaultClient};

use crate::keystore::{KeyLocation, KeystoreError};

/// What the agent keeps of its enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    /// The vault's base URL.
    pub vault_url: String,
    /// The device id the vault assigned.
    pub device_id: Uuid,
    /// The vault's policy-signing key (Ed25519, base64).
    pub policy_public_key: String,
    /// The vault's receipt-signing key (Ed25519, base64).
    pub receipt_public_key: String,
    /// The recording recipients (`age1…`).
    pub recipients: Vec<String>,
    /// The vault's CA certificate (PEM) the agent pins, if IT gave one.
    pub ca_pem: Option<String>,
    /// Where the device key is.
    pub key: KeyLocation,
    /// When the device enrolled (RFC 3339).
    pub enrolled_at: String,
}

/// Which keystore `enroll` puts the device key in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyStoreChoice {
    /// The OS keystore (default).
    Os,
    /// A file in the spool's config folder, mode 0600 (headless machines without a keystore).
    File,
}

/// What `enroll` needs.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// The spool folder (the enrollment is kept in its config folder).
    pub spool: PathBuf,
    /// The vault's base URL (`https://…`).
    pub vault_url: String,
    /// The one-use token.
    pub token: String,
    /// The vault's CA certificate file to pin.
    pub ca_file: Option<PathBuf>,
    /// Where the device key goes.
    pub key_store: KeyStoreChoice,
    /// The vault's policy key as IT pinned it (managed settings): another answer is refused.
    pub pinned_policy_key: Option<String>,
}

/// Why enrollment failed or a stored enrollment cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The CA file could not be read.
    #[error("CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The client could not be set up (URL, CA).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The vault refused or could not be reached.
    #[error("enrollment failed: {0}")]
    Request(#[from] RequestError),
    /// The vault's answer is unusable (bad recipients or keys): nothing was stored.
    #[error("the vault's enrollment answer is unusable: {0}")]
    BadAnswer(String),
    /// The vault handed out no valid recipient.
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// The device key could not be read or made.
    #[error(transparent)]
    DeviceKey(#[from] DeviceKeyError),
    /// The keystore failed.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The enrollment file could not be read or written.
    #[error("enrollment file {path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// `<spool>/config/enrollment.json`.
pub fn enrollment_path(spool: &Path) -> PathBuf {
    spool.join("config").join("enrollment.json")
}

/// The pre-enrollment key file (`<spool>/config/device.key`).
pub fn file_key_path(spool: &Path) -> PathBuf {
    spool.join("config").join("device.key")
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl Enrollment {
    /// The enrollment kept in `spool`, if the device is enrolled.
    pub fn load(spool: &Path) -> Result<Option<Self>, EnrollError> {
        let path = enrollment_path(spool);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(EnrollError::File {
                    path,
                    detail: e.to_string(),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EnrollError::File {
                path,
                detail: e.to_string(),
            })
    }

    fn save(&self, spool: &Path) -> Result<(), EnrollError> {
        let path = enrollment_path(spool);
        let json = serde_json::to_vec_pretty(self).expect("an enrollment always serializes");
        vigil_spool::write_atomic(&path, &json).map_err(|e| EnrollError::File {
            path,
            detail: e.to_string(),
        })
    }

    /// The vault's policy key: only policy signed by it is applied.
    pub fn policy_key(&self) -> Result<VerifyingKey, EnrollError> {
        parse_key("policy_public_key", &self.policy_public_key)
    }

    /// The key policy is verified with: the one IT pinned in managed settings when there is
    /// one (an `enrollment.json` naming another was edited: said in the log, and not
    /// believed), else the enrollment's.
    pub fn trusted_policy_key(&self, pinned: Option<&str>) -> Result<VerifyingKey, EnrollError> {
        let Some(pin) = pinned else {
            return self.policy_key();
        };
        let pinned = parse_key("the pinned policy_public_key", pin)?;
        if self.policy_key().ok() != Some(pinned) {
            tracing::error!(
                "enrollment.json names another policy key than the pinned one; using the pinned key"
            );
        }
        Ok(pinned)
    }

    /// The vault's receipt key.
    pub fn receipt_key(&self) -> Result<VerifyingKey, EnrollError> {
        parse_key("receipt_public_key", &self.receipt_public_key)
    }

    /// A client of the enrolled vault, pinned to its CA.
    pub fn client(&self) -> Result<VaultClient, EnrollError> {
        Ok(VaultClient::new(
            &self.vault_url,
            self.ca_pem.as_deref().map(str::as_bytes),
        )?)
    }

    /// The device key, from wherever enrollment put it.
    pub fn device_key(&self) -> Result<DeviceKey, EnrollError> {
        Ok(self.key.load()?)
    }
}

fn parse_key(name: &str, text: &str) -> Result<VerifyingKey, EnrollError> {
    let bytes: [u8; 32] = B64
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| EnrollError::BadAnswer(format!("{name} is not a 32-byte key")))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| EnrollError::BadAnswer(format!("{name} is invalid")))
}

/// Enrolls this device with a vault. Enrolling again (a new token, e.g. after a reinstall of
/// the vault's CA) keeps the device key, so the vault recognises the device.
pub fn enroll(options: &EnrollOptions) -> Result<Enrollment, EnrollError> {
    let ca_pem = options
        .ca_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|source| EnrollError::CaFile {
                path: path.clone(),
                source,
            })
        })
        .transpose()?;
    let client = VaultClient::new(&options.vault_url, ca_pem.as_deref().map(str::as_bytes))?;
    let previous = Enrollment::load(&options.spool)?;
    let file_key = file_key_path(&options.spool);
    let key = match &previous {
        Some(p) => p.device_key()?,
        None => match DeviceKey::load(&file_key)? {
            Some(key) => key,
            None => DeviceKey::generate(),
        },
    };
    let request = EnrollRequest {
        token: options.token.clone(),
        device_public_key: B64.encode(key.signing_key().verifying_key().as_bytes()),
        hostname: host_name(),
        user: crate::os::os_user(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EnrollError::BadAnswer(format!("runtime: {e}")))?;
    let answer = runtime.block_on(client.enroll(&request))?;
    // Fail closed: store nothing unless the answer is usable.
    Recipients::parse(&answer.recipients)?;
    let policy_key = parse_key("policy_public_key", &answer.policy_public_key)?;
    parse_key("receipt_public_key", &answer.receipt_public_key)?;
    if let Some(pin) = &options.pinned_policy_key {
        if parse_key("the pinned policy_public_key", pin)? != policy_key {
            return Err(EnrollError::BadAnswer(
                "the vault's policy key is not the one IT pinned in managed settings".into(),
            ));
        }
    }

    let location = match options.key_store {
        KeyStoreChoice::Os => KeyLocation::OsKeystore {
            account: format!("device-{}", answer.device_id),
        },
        KeyStoreChoice::File => KeyLocation::File {
            path: file_key.clone(),
        },
    };
    location.store(&key)?;
    let enrollment = Enrollment {
        vault_url: client.base().to_owned(),
        device_id: answer.device_id,
        policy_public_key: answer.policy_public_key,
        receipt_public_key: answer.receipt_public_key,
        recipients: answer.recipients,
        ca_pem,
        key: location.clone(),
        enrolled_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    enrollment.save(&options.spool)?;
    // The key moved: no copy stays behind in a file.
    if matches!(location, KeyLocation::OsKeystore { .. }) {
        let _ = std::fs::remove_file(&file_key);
    }
    if let Some(previous) = previous.filter(|p| p.key != location) {
        previous.key.delete();
    }
    tracing::info!(device = %enrollment.device_id, vault = %enrollment.vault_url, "enrolled");
    Ok(enrollment)
}
