//! `vault.toml`: a deployment's settings that are not secret.

use serde::{Deserialize, Serialize};
use vigil_vault_store::StorageConfig;

/// `vault.toml`: settings that are not secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Layout version of the data folder.
    pub format: u32,
    /// Host names and addresses the server certificate is valid for.
    pub hosts: Vec<String>,
    /// When the deployment was created (RFC 3339).
    pub created_at: String,
    /// Storage backends; absent means the embedded defaults (SQLite and `blobs/`).
    #[serde(default, skip_serializing_if = "StorageConfig::is_default")]
    pub storage: StorageConfig,
    /// The retention sweeper (`[retention]`); absent means every 10 minutes.
    #[serde(default, skip_serializing_if = "RetentionConfig::is_default")]
    pub retention: RetentionConfig,
}

/// Version of the data folder's layout.
pub const LAYOUT_FORMAT: u32 = 1;

/// `[retention]` of `vault.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between two sweeps of the server (0: the server does not sweep).
    pub sweep_seconds: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self { sweep_seconds: 600 }
    }
}

impl RetentionConfig {
    /// Whether these are the defaults (then `vault.toml` leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
