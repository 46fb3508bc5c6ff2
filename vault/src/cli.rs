//! Command-line arguments of `vigil-vault`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vigil_vault_core::when::When;

/// The Vigil vault: stores sealed recordings, enrolls devices, verifies every segment.
#[derive(Debug, Parser)]
#[command(name = "vigil-vault", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Data {
    /// The deployment's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct Key {
    /// File holding the vault key that encrypts private keys at rest
    /// (default: the VIGIL_VAULT_KEY environment variable).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

/// Storage backends chosen at `init` (written to vault.toml's `[storage]`; secrets come from
/// the environment: VIGIL_VAULT_PG_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
#[derive(Debug, Args)]
pub struct StorageArgs {
    /// Metadata backend.
    #[arg(long, value_name = "BACKEND", default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    pub metadata: String,
    /// PostgreSQL URL without password (or set VIGIL_VAULT_PG_URL).
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Blob backend.
    #[arg(long, value_name = "BACKEND", default_value = "local", value_parser = ["local", "s3"])]
    pub blobs: String,
    /// S3 service URL (default: AWS).
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket.
    #[arg(long, value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// S3 region.
    #[arg(long, value_name = "NAME")]
    pub s3_region: Option<String>,
    /// Key prefix inside the bucket.
    #[arg(long, value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
}

impl StorageArgs {
    /// The `[storage]` section these flags describe.
    pub fn config(self) -> vigil_vault_store::storage::StorageConfig {
        use vigil_vault_store::storage::{BlobBackend, MetadataBackend, StorageConfig};
        StorageConfig {
            metadata: if self.metadata == "postgres" {
                MetadataBackend::Postgres
            } else {
                MetadataBackend::Sqlite
            },
            postgres_url: self.postgres_url,
            postgres_pool: None,
            blobs: if self.blobs == "s3" {
                BlobBackend::S3
            } else {
                BlobBackend::Local
            },
            s3_endpoint: self.s3_endpoint,
            s3_bucket: self.s3_bucket,
            s3_region: self.s3_region,
            s3_prefix: self.s3_prefix,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a deployment: metadata, blob folder, keys, TLS CA and certificate, first admin.
    Init {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
        /// Host name or IP address for the server certificate (repeatable;
        /// default: localhost, 127.0.0.1, ::1).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Name of the first admin account.
        #[arg(long, default_value = "admin")]
        admin: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Serve the HTTPS API.
    Serve {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
        /// Address to listen on (port 0: any free port; the bound address is printed).
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: SocketAddr,
        /// Largest accepted segment upload, in bytes.
        #[arg(long, default_value_t = vigil_vault_http::server::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
    },
    /// Enrollment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Enrolled devices.
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// Missing sequence numbers per session.
    Gaps {
        #[command(flatten)]
        data: Data,
        /// Only this session.
        #[arg(long, value_name = "ID")]
        session: Option<uuid::Uuid>,
    },
    /// The vault's keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Agents' live state: recording, screen, masked, paused, backlog, policy and agent versions.
    Agents {
        #[command(flatten)]
        data: Data,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Recording policy: get, set, diff, history (organization, team and device layers).
    Policy {
        #[command(subcommand)]
        command: crate::cmd_policy::PolicyCommand,
    },
    /// List the audit log (who did what, when, why); `audit verify` re-checks its hash chain.
    Audit {
        /// The deployment's data folder.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Re-check the log's hash chain after listing it; exit 1 on a break.
        #[arg(long)]
        verify: bool,
        #[command(subcommand)]
        command: Option<AuditCommand>,
    },
    /// Search the recordings (as the console's search does; audited): by agent, team, time,
    /// call, masked, and the policy version they were recorded under.
    Recordings {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        filter: crate::cmd_recordings::RecordingsArgs,
    },
    /// Give stored segments without a search entry one, from their stored manifests (after
    /// upgrading a deployment that stored segments before search existed).
    Reindex {
        #[command(flatten)]
        data: Data,
    },
    /// Console accounts and their API tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Export stored segments as evidence (sealed blobs, signed manifests and receipts, a
    /// signed index) into a new or empty folder. Audited.
    Export {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
        /// The folder to write (created; must be empty if it exists).
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// Only this session.
        #[arg(long, value_name = "ID")]
        session: Option<uuid::Uuid>,
        /// Only this device.
        #[arg(long, value_name = "ID")]
        device: Option<uuid::Uuid>,
        /// Only segments recorded at or after this time (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME")]
        from: Option<When>,
        /// Only segments recorded before this time (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME")]
        to: Option<When>,
        /// Why the recordings leave the vault (kept in the audit log and the index; without
        /// it the log says that no reason was stated).
        #[arg(long, value_name = "TEXT", default_value = NO_REASON)]
        reason: String,
    },
    /// Verify an export offline: signatures, hashes, chains, receipts, the index, gaps.
    /// Exit 0: all verifies; 1: altered; 2: segments missing (see --allow-gaps).
    Verify {
        /// The export folder.
        out: PathBuf,
        /// Exit 0 even when segments are missing (tampering still exits 1).
        #[arg(long)]
        allow_gaps: bool,
        /// The vault's receipt public key as you know it (base64), instead of trusting the
        /// copy inside the export.
        #[arg(long, value_name = "BASE64")]
        receipt_key: Option<String>,
    },
    /// Legal holds.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Retention of recordings.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Destroy the media of every segment of a session (or device) overlapping a time range,
    /// both kinds, keeping the signed manifests and a signed tombstone per segment. Audited.
    Redact {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
        /// Segments of this session.
        #[arg(long, value_name = "ID", required_unless_present = "device")]
        session: Option<uuid::Uuid>,
        /// Segments of this device (agent).
        #[arg(long, value_name = "ID")]
        device: Option<uuid::Uuid>,
        /// Range start (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME")]
        from: When,
        /// Range end, exclusive (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME")]
        to: When,
        /// The case the redaction serves.
        #[arg(long, value_name = "NAME")]
        case: String,
        /// Why (kept in the audit log and each tombstone).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Print the signed tombstone of a redacted segment (JSON, verifiable with the receipt key).
    Tombstone {
        #[command(flatten)]
        data: Data,
        /// The segment id.
        #[arg(long, value_name = "ID")]
        segment: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: the recordings it covers are never deleted while it is active.
    /// Scopes add up (no cap): every --session, every --device, and the --from/--to range
    /// (which, given with --device, limits those devices to the range). Audited.
    Add {
        #[command(flatten)]
        data: Data,
        /// The legal case.
        #[arg(long, value_name = "NAME")]
        case: String,
        /// A session to hold (repeatable).
        #[arg(long = "session", value_name = "ID")]
        sessions: Vec<uuid::Uuid>,
        /// A device (agent) to hold (repeatable).
        #[arg(long = "device", value_name = "ID")]
        devices: Vec<uuid::Uuid>,
        /// Range start (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME", requires = "to")]
        from: Option<When>,
        /// Range end, exclusive (RFC 3339 or Unix seconds).
        #[arg(long, value_name = "TIME", requires = "from")]
        to: Option<When>,
        /// Why (kept in the hold and the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// List holds (active ones; --all for released ones too).
    List {
        #[command(flatten)]
        data: Data,
        /// Include released holds.
        #[arg(long)]
        all: bool,
        /// Print every scope of each hold, one per line.
        #[arg(long)]
        scopes: bool,
    },
    /// Release a hold. Audited.
    Release {
        #[command(flatten)]
        data: Data,
        /// The hold id (from `hold list`).
        id: uuid::Uuid,
        /// Why.
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete expired blobs now (those no active hold covers), as the server does periodically.
    Sweep {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
    },
}

/// What the audit log says when an export names no reason (the commands IT scripts keep
/// working; the log still shows that nobody said why).
pub const NO_REASON: &str = "not stated (no --reason given)";

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the recording identity (AGE-SECRET-KEY-1…) on stdout, for `age -d -i`. Audited;
    /// needs the vault key and a reason.
    ExportRecordingIdentity {
        #[command(flatten)]
        data: Data,
        #[command(flatten)]
        key: Key,
        /// Why the identity leaves the vault (kept in the audit log; without it the log says
        /// that no reason was stated).
        #[arg(long, value_name = "TEXT", default_value = NO_REASON)]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new one-use enrollment token (stored only as a hash).
    Create {
        #[command(flatten)]
        data: Data,
        /// Team the enrolled device joins.
        #[arg(long)]
        team: Option<String>,
        /// Lifetime: 90s, 30m, 24h, 7d.
        #[arg(long, default_value = "24h", value_parser = vigil_vault_core::when::parse_duration)]
        expires: time::Duration,
        /// Why the token is made (kept in the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List enrolled devices.
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Revoke a device: its uploads are refused from now on.
    Revoke {
        #[command(flatten)]
        data: Data,
        /// The device id (from `device list`).
        id: uuid::Uuid,
        /// Why the device is revoked (kept in the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-check the audit log's hash chain; exit 1 naming each broken record.
    Verify {
        /// The deployment's data folder.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// A file outside the data folder holding the head verified last (`<seq> <sha256>`):
        /// the log must still hold it (deleting the newest records is caught); rewritten with
        /// the new head when the chain holds. Created if missing.
        #[arg(long, value_name = "FILE")]
        anchor: Option<PathBuf>,
    },
}

/// A role name (agent, supervisor, qa_analyst, compliance, admin).
fn parse_role(text: &str) -> Result<vigil_vault_core::access::Role, String> {
    text.parse()
        .map_err(|e: vigil_vault_core::access::UnknownRole| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an account. The password is read from stdin with --password-stdin, else generated
    /// and printed once.
    Add {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// Role: agent, supervisor, qa_analyst, compliance, admin.
        #[arg(long, value_parser = parse_role)]
        role: vigil_vault_core::access::Role,
        /// A team the account is limited to (supervisors; repeatable).
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Change an account's role.
    SetRole {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// The new role.
        #[arg(value_parser = parse_role)]
        role: vigil_vault_core::access::Role,
    },
    /// Replace an account's teams (none: no team).
    SetTeams {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// A team (repeatable).
        #[arg(long = "team", value_name = "TEAM")]
        teams: Vec<String>,
    },
    /// Set an account's password (a reset): from stdin with --password-stdin, else generated
    /// and printed once. It must be changed at the next login.
    SetPassword {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: its sessions end, its password and API tokens stop working.
    Disable {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// Why (kept in the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Enable a disabled account again.
    Enable {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
    },
    /// API tokens (for automation: `Authorization: Bearer <token>`).
    Token {
        #[command(subcommand)]
        command: UserTokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserTokenCommand {
    /// Print a new API token acting as the account (shown once, stored as a hash).
    Create {
        #[command(flatten)]
        data: Data,
        /// Login name.
        name: String,
        /// Lifetime in days (default: until revoked).
        #[arg(long, value_name = "N")]
        expires_days: Option<u32>,
    },
    /// List API tokens (ids, accounts, expiry; never the tokens).
    List {
        #[command(flatten)]
        data: Data,
    },
    /// Revoke an API token.
    Revoke {
        #[command(flatten)]
        data: Data,
        /// The token's id (from `user token list`).
        id: uuid::Uuid,
    },
}
