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
    /// Console accounts (`[accounts]`); absent means a second factor is required.
    #[serde(default, skip_serializing_if = "AccountsConfig::is_default")]
    pub accounts: AccountsConfig,
    /// Signed anchors of the audit log (`[audit]`); absent means every 5 minutes.
    #[serde(default, skip_serializing_if = "AuditConfig::is_default")]
    pub audit: AuditConfig,
    /// Offline escrow recipients (`age1…`) whose identities the vault never holds: agents seal
    /// every blob to them beside the vault's own recipient, the vault hands them out signed
    /// (enrollment and every policy statement) and ingest expects exactly that many stanzas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escrow_recipients: Vec<String>,
    /// The HTTP front (`[http]`); absent means clients connect directly.
    #[serde(default, skip_serializing_if = "HttpConfig::is_default")]
    pub http: HttpConfig,
}

/// `[http]` of `vault.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Reverse proxies (load balancers) in front of the vault: a request from one of these
    /// addresses is attributed to the address it forwarded (`X-Forwarded-For`, read from the
    /// right, skipping these proxies), for the audit log and the per-address throttle. A
    /// request from anyone else is attributed to its peer and its header ignored, so a client
    /// cannot name its own address.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl HttpConfig {
    /// Whether these are the defaults (then `vault.toml` leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl VaultConfig {
    /// Checks what serde cannot: every escrow recipient is an age X25519 recipient.
    pub fn validate(&self) -> Result<(), String> {
        check_escrow_recipients(&self.escrow_recipients)
    }
}

/// Every escrow recipient parses as an age X25519 recipient (`age1…`), and none repeats.
pub fn check_escrow_recipients(recipients: &[String]) -> Result<(), String> {
    for (n, r) in recipients.iter().enumerate() {
        r.parse::<age::x25519::Recipient>()
            .map_err(|_| format!("escrow recipient {r:?} is not an age X25519 recipient"))?;
        if recipients[..n].contains(r) {
            return Err(format!("escrow recipient {r} is listed twice"));
        }
    }
    Ok(())
}

/// `[accounts]` of `vault.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// Accounts that can hear recordings, change policy or manage accounts need a TOTP second
    /// factor (see `vigil_vault_core::mfa`). Off only where another layer (an identity
    /// provider in front of the console) asks for one.
    pub mfa_required: bool,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self { mfa_required: true }
    }
}

impl AccountsConfig {
    /// Whether these are the defaults (then `vault.toml` leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `[audit]` of `vault.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Seconds between two signed anchors of the log's head in the blob store (0: none).
    pub anchor_seconds: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            anchor_seconds: 300,
        }
    }
}

impl AuditConfig {
    /// Whether these are the defaults (then `vault.toml` leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Version of the data folder's layout.
pub const LAYOUT_FORMAT: u32 = 1;

/// `[retention]` of `vault.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Seconds between two sweeps of the server (0: the server does not sweep).
    #[serde(default = "default_sweep_seconds")]
    pub sweep_seconds: u64,
    /// How long before its arrival a segment may say it started (an agent offline that long
    /// uploads late). A segment claiming an earlier start — a device clock set back, to make
    /// retention expire it early or a hold's time range miss it — counts as started this long
    /// before it arrived; one claiming a start more than five minutes after its arrival counts
    /// as started on arrival. Search, holds and retention use the counted time, the manifest
    /// keeps the device's, and the correction is audited (`segment.clock_corrected`).
    #[serde(default = "default_clock_tolerance_days")]
    pub clock_tolerance_days: u32,
}

fn default_sweep_seconds() -> u64 {
    600
}

fn default_clock_tolerance_days() -> u32 {
    7
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            sweep_seconds: default_sweep_seconds(),
            clock_tolerance_days: default_clock_tolerance_days(),
        }
    }
}

impl RetentionConfig {
    /// Whether these are the defaults (then `vault.toml` leaves the section out).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
