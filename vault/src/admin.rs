//! Offline administration of a deployment: enrollment tokens, devices, gap reports, accounts.
//! None of it needs the vault key, and all of it works while the server runs (SQLite
//! serializes writers; the server reads devices and tokens from the database on every request).

use std::path::Path;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rand::RngCore;
use uuid::Uuid;

use crate::gaps::{GapsError, SessionGaps};
use crate::layout::{Layout, VaultConfig};
use crate::storage::StorageError;
use crate::store::{DeviceRecord, MetadataStore, StoreError, TokenRecord};

/// Why a data folder could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenDataError {
    /// The folder holds no deployment (`vigil-vault init` was not run).
    #[error("{0} is not a vault data folder (run `vigil-vault init --data …` first)")]
    NotInitialized(String),
    /// `vault.toml` is unreadable.
    #[error("vault.toml: {0}")]
    Config(String),
    /// The metadata store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The configured storage backends could not be opened.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Why an enrollment token could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The lifetime is negative or longer than a year.
    #[error("token lifetime must be between 0 seconds and 366 days")]
    BadLifetime,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a device command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// No device has this id.
    #[error("no device with id {0}")]
    NotFound(Uuid),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration (examples: 90s, 30m, 24h, 7d)")]
pub struct DurationError(pub String);

/// Parses `90s`, `30m`, `24h`, `7d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<time::Duration, DurationError> {
    let text = text.trim();
    let err = || DurationError(text.to_owned());
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = text.split_at(unit_at);
    let n: i64 = number.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(err)?;
    Ok(time::Duration::seconds(secs))
}

/// A freshly created enrollment token. The text is shown once and stored only as a hash.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token to give to IT (`vgt_…`).
    pub token: String,
    /// When it stops working.
    pub expires_at: time::OffsetDateTime,
}

/// SHA-256 (hex) of a token's text, as stored.
pub fn token_hash(token: &str) -> String {
    vigil_proto::sha256_hex(token.trim().as_bytes())
}

/// An argon2id PHC hash of a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// An opened data folder, without private keys.
#[derive(Debug)]
pub struct Admin {
    layout: Layout,
    config: VaultConfig,
    store: Box<dyn MetadataStore>,
}

impl Admin {
    /// Opens the deployment in `data`.
    pub fn open(data: &Path) -> Result<Self, OpenDataError> {
        let layout = Layout::new(data);
        let text = std::fs::read_to_string(layout.config())
            .map_err(|_| OpenDataError::NotInitialized(data.display().to_string()))?;
        let config: VaultConfig =
            toml::from_str(&text).map_err(|e| OpenDataError::Config(e.to_string()))?;
        if config.storage.metadata == crate::storage::MetadataBackend::Sqlite
            && !layout.metadata().is_file()
        {
            return Err(OpenDataError::NotInitialized(data.display().to_string()));
        }
        let store = config.storage.open_metadata(&layout)?;
        Ok(Self {
            layout,
            config,
            store,
        })
    }

    /// The folder's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `vault.toml`.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The metadata store.
    pub fn store(&self) -> &dyn MetadataStore {
        self.store.as_ref()
    }

    /// The metadata store, for an opened vault (which then does not open it twice).
    pub(crate) fn into_store(self) -> Box<dyn MetadataStore> {
        self.store
    }

    /// Creates a one-use enrollment token valid for `lifetime` (zero: already expired), and
    /// audits it (`token.create`, the token's hash as target) for `actor`. Should the audit
    /// record fail, the token is not returned, so nobody can use it.
    pub fn create_token(
        &self,
        team: Option<String>,
        lifetime: time::Duration,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<CreatedToken, TokenError> {
        if lifetime.is_negative() || lifetime > time::Duration::days(366) {
            return Err(TokenError::BadLifetime);
        }
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let token = format!("vgt_{}", B64URL.encode(secret));
        let now = crate::now();
        let expires_at = now + lifetime;
        let token_sha256 = token_hash(&token);
        self.store.insert_token(&TokenRecord {
            token_sha256: token_sha256.clone(),
            team,
            created_at: now.unix_timestamp(),
            expires_at: expires_at.unix_timestamp(),
        })?;
        crate::audit::record(
            self.store(),
            actor,
            crate::audit::ACTION_TOKEN_CREATE,
            Some(format!("token sha256:{token_sha256}")),
            crate::audit::stated_reason(reason),
        )?;
        Ok(CreatedToken { token, expires_at })
    }

    /// Every enrolled device.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, DeviceError> {
        Ok(self.store.devices()?)
    }

    /// Revokes a device: its uploads are refused from now on. Audited (`device.revoke`) for
    /// `actor` once the revocation is stored.
    pub fn revoke_device(
        &self,
        id: Uuid,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<(), DeviceError> {
        if !self
            .store
            .revoke_device(id, crate::now().unix_timestamp())?
        {
            return Err(DeviceError::NotFound(id));
        }
        crate::audit::record(
            self.store(),
            actor,
            crate::audit::ACTION_DEVICE_REVOKE,
            Some(id.to_string()),
            crate::audit::stated_reason(reason),
        )?;
        Ok(())
    }

    /// Every audit record, oldest first (see [`crate::audit`]).
    pub fn audit_records(
        &self,
    ) -> Result<Vec<crate::store::AuditRecord>, crate::audit::AuditError> {
        crate::audit::records(self.store())
    }

    /// The gap report (see [`crate::gaps`]).
    pub fn gaps(&self, session: Option<Uuid>) -> Result<Vec<SessionGaps>, GapsError> {
        crate::gaps::gaps(&self.store, session)
    }

    /// Whether `password` is the password of account `name` (false for unknown accounts).
    pub fn check_password(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        let Some(user) = self.store.user(name)? else {
            return Ok(false);
        };
        let Ok(hash) = PasswordHash::new(&user.password_hash) else {
            return Err(StoreError::Corrupt(format!("password hash of {name}")));
        };
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap(), time::Duration::seconds(90));
        assert_eq!(parse_duration("24h").unwrap(), time::Duration::hours(24));
        assert_eq!(parse_duration("7d").unwrap(), time::Duration::days(7));
        assert_eq!(parse_duration("0s").unwrap(), time::Duration::ZERO);
        for bad in ["", "h", "5", "5w", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_hashes_verify() {
        let hash = hash_password("hunter2hunter2").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"hunter2hunter2", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"other", &parsed)
            .is_err());
    }
}
