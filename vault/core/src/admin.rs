//! Offline administration of a deployment: enrollment tokens, devices, gap reports, accounts.
//! None of it needs the vault key, and all of it works while the server runs (SQLite
//! serializes writers; the server reads devices and tokens from the database on every request).

use std::path::Path;

use uuid::Uuid;
use vigil_vault_store::metadata::{DeviceRecord, MetadataStore, StoreError, TokenRecord};
use vigil_vault_store::{Layout, StorageError};

use crate::config::VaultConfig;
use crate::credentials::{password_matches, random_secret, secret_hash};
use crate::gaps::{GapsError, SessionGaps};

/// Why a data folder could not be opened.
#[derive(Debug, thiserror::Error)]
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
pub enum DeviceError {
    /// No device has this id.
    #[error("no device with id {0}")]
    NotFound(Uuid),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a duration text was refused.
/// A freshly created enrollment token. The text is shown once and stored only as a hash.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token to give to IT (`vgt_…`).
    pub token: String,
    /// When it stops working.
    pub expires_at: time::OffsetDateTime,
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
        config.validate().map_err(OpenDataError::Config)?;
        if config.storage.metadata == vigil_vault_store::storage::MetadataBackend::Sqlite
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
        let token = format!("vgt_{}", random_secret(32));
        let now = crate::clock::now();
        let expires_at = now + lifetime;
        let token_sha256 = secret_hash(&token);
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
            .revoke_device(id, crate::clock::now().unix_timestamp())?
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
    ) -> Result<Vec<vigil_vault_store::metadata::AuditRecord>, crate::audit::AuditError> {
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
        password_matches(password, &user.password_hash)
            .ok_or_else(|| StoreError::Corrupt(format!("password hash of {name}")))
    }
}
