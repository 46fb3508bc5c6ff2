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
    /// TLS to PostgreSQL (default: verify-full unless the database is on loopback).
    #[arg(long, value_name = "MODE", value_parser = ["verify-full", "disable"])]
    pub postgres_tls: Option<String>,
    /// PEM file of the CA that issues the database's certificate (default: the system's).
    #[arg(long, value_name = "FILE")]
    pub postgres_ca_file: Option<PathBuf>,
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
    /// PEM file of a private CA that issues the S3 endpoint's certificate.
    #[arg(long, value_name = "FILE")]
    pub s3_ca_file: Option<PathBuf>,
}

impl StorageArgs {
    /// The `[storage]` section these flags describe.
    pub fn config(self) -> vigil_vault_store::storage::StorageConfig {
        use vigil_vault_store::metadata::PgTlsMode;
        use vigil_vault_store::storage::{BlobBackend, MetadataBackend, StorageConfig};
        StorageConfig {
            metadata: if self.metadata == "postgres" {
                MetadataBackend::Postgres
            } else {
                MetadataBackend::Sqlite
            },
            postgres_url: self.postgres_url,
            postgres_tls: self.postgres_tls.map(|mode| match mode.as_str() {
                "disable" => PgTlsMode::Disable,
                _ => PgTlsMode::VerifyFull,
            }),
            // Absolute, so `serve` finds it from any working directory.
            postgres_ca_file: self.postgres_ca_file.map(absolute),
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
            s3_ca_file: self.s3_ca_file.map(absolute),
        }
    }
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a deployment: metadata, blob folder, keys, TLS CA and certificate, first admin.
    Init(InitArgs),
    /// Serve the HTTPS API.
    Serve(ServeArgs),
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
    Gaps(GapsArgs),
    /// The vault's keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Agents' live state: recording, screen, masked, paused, backlog, policy and agent versions.
    Agents(AgentsArgs),
    /// Recording policy: get, set, diff, history (organization, team and device layers).
    Policy {
        #[command(subcommand)]
        command: crate::commands::policy::PolicyCommand,
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
    Recordings(RecordingsArgs),
    /// Give stored segments without a search entry one, from their stored manifests (after
    /// upgrading a deployment that stored segments before search existed).
    Reindex(ReindexArgs),
    /// Console accounts and their API tokens.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Export stored segments as evidence (sealed blobs, signed manifests and receipts, a
    /// signed index) into a new or empty folder. Audited.
    Export(ExportArgs),
    /// Verify an export offline: signatures, hashes, chains, receipts, the index, gaps.
    /// Exit 0: all verifies; 1: altered; 2: segments missing (see --allow-gaps).
    Verify(VerifyArgs),
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
    Redact(RedactArgs),
    /// Print the signed tombstone of a redacted segment (JSON, verifiable with the receipt key).
    Tombstone(TombstoneArgs),
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: the recordings it covers are never deleted while it is active.
    /// Scopes add up (no cap): every --session, every --device, and the --from/--to range
    /// (which, given with --device, limits those devices to the range). Audited.
    Add(HoldAddArgs),
    /// List holds (active ones; --all for released ones too).
    List(HoldListArgs),
    /// Release a hold. Audited.
    Release(HoldReleaseArgs),
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Delete expired blobs now (those no active hold covers), as the server does periodically.
    Sweep(RetentionSweepArgs),
}

/// What the audit log says when an export names no reason (the commands IT scripts keep
/// working; the log still shows that nobody said why).
pub const NO_REASON: &str = "not stated (no --reason given)";

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the recording identity (AGE-SECRET-KEY-1…) on stdout, for `age -d -i`. Audited;
    /// needs the vault key and a reason.
    ExportRecordingIdentity(KeysExportRecordingIdentityArgs),
    /// Issue a new server certificate under the deployment's CA (agents pinning the CA keep
    /// connecting); `serve` does it by itself within 30 days of expiry. Audited; needs the
    /// vault key. Takes effect at the server's next start.
    RenewTls(KeysRenewTlsArgs),
    /// Replace the recording identity, or the policy or receipt signing key. The old identity
    /// is kept to open older recordings; the old signing key endorses the new one, so agents
    /// follow without re-enrolling. A running server and its agents take the new key within
    /// seconds. Audited; needs the vault key and a reason.
    Rotate(KeysRotateArgs),
    /// Each key's age against its cryptoperiod (exit 1 when one is due).
    Status(KeysStatusArgs),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new one-use enrollment token (stored only as a hash).
    Create(TokenCreateArgs),
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List enrolled devices.
    List(DeviceListArgs),
    /// Revoke a device: its uploads are refused from now on.
    Revoke(DeviceRevokeArgs),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Re-check the audit log's hash chain; exit 1 naming each broken record.
    Verify(AuditVerifyArgs),
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
    Add(UserAddArgs),
    /// List accounts.
    List(UserListArgs),
    /// Change an account's role.
    SetRole(UserSetRoleArgs),
    /// Replace an account's teams (none: no team).
    SetTeams(UserSetTeamsArgs),
    /// Set an account's password (a reset): from stdin with --password-stdin, else generated
    /// and printed once. It must be changed at the next login.
    SetPassword(UserSetPasswordArgs),
    /// Disable an account: its sessions end, its password and API tokens stop working.
    Disable(UserDisableArgs),
    /// Enable a disabled account again.
    Enable(UserEnableArgs),
    /// Remove an account's second factor (a lost phone): it enrolls a new one at its next
    /// login.
    ResetMfa(UserResetMfaArgs),
    /// API tokens (for automation: `Authorization: Bearer <token>`).
    Token {
        #[command(subcommand)]
        command: UserTokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserTokenCommand {
    /// Print a new API token acting as the account (shown once, stored as a hash).
    Create(UserTokenCreateArgs),
    /// List API tokens (ids, accounts, expiry; never the tokens).
    List(UserTokenListArgs),
    /// Revoke an API token.
    Revoke(UserTokenRevokeArgs),
}

/// The arguments of `Command::Init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// Host name or IP address for the server certificate (repeatable;
    /// default: localhost, 127.0.0.1, ::1).
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Name of the first admin account.
    #[arg(long, default_value = "admin")]
    pub admin: String,
    #[command(flatten)]
    pub storage: StorageArgs,
    /// An offline escrow recipient (age1…, repeatable) every agent seals to beside the vault's
    /// own; the vault never holds its identity (`escrow_recipients` in vault.toml).
    #[arg(long = "escrow-recipient", value_name = "AGE_PUBLIC_KEY")]
    pub escrow_recipients: Vec<String>,
}

/// The arguments of `Command::Serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// Address to listen on (port 0: any free port; the bound address is printed).
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// Largest accepted segment upload, in bytes.
    #[arg(long, default_value_t = vigil_vault_http::server::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Longest a request may take, body included, in seconds (408 after it).
    #[arg(long, value_name = "SECONDS", default_value_t = vigil_vault_http::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    pub request_timeout: u64,
    /// Requests handled at once; more get 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = vigil_vault_http::DEFAULT_MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Segment uploads one device may make per second on average (0: no limit); more get 429
    /// with Retry-After (agents retry with their backoff).
    #[arg(long, value_name = "N", default_value_t = vigil_vault_http::server::DEFAULT_DEVICE_UPLOADS_PER_SECOND)]
    pub device_uploads_per_second: f64,
    /// Uploads one device may make at once after a quiet spell.
    #[arg(long, value_name = "N", default_value_t = vigil_vault_http::server::DEFAULT_DEVICE_UPLOAD_BURST)]
    pub device_upload_burst: u32,
    /// Uploads of one device in flight at once (their bodies are held in memory; 0: no cap);
    /// more get 429.
    #[arg(long, value_name = "N", default_value_t = vigil_vault_core::upload_gate::DEFAULT_IN_FLIGHT_PER_DEVICE)]
    pub device_uploads_in_flight: usize,
    /// Uploads verified and stored at once, each with its body in memory (bodies stream to
    /// the data folder's incoming/ while they arrive); default: twice the cores, at least 4.
    #[arg(long, value_name = "N")]
    pub ingest_concurrency: Option<usize>,
}

/// The arguments of `Command::Gaps`.
#[derive(Debug, Args)]
pub struct GapsArgs {
    #[command(flatten)]
    pub data: Data,
    /// Only this session.
    #[arg(long, value_name = "ID")]
    pub session: Option<uuid::Uuid>,
}

/// The arguments of `Command::Agents`.
#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub data: Data,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `Command::Recordings`.
#[derive(Debug, Args)]
pub struct RecordingsArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub filter: crate::commands::recordings::RecordingFilterArgs,
}

/// The arguments of `Command::Reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub data: Data,
}

/// The arguments of `Command::Export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// The folder to write (created; must be empty if it exists).
    #[arg(long, value_name = "OUT")]
    pub out: PathBuf,
    /// Only this session.
    #[arg(long, value_name = "ID")]
    pub session: Option<uuid::Uuid>,
    /// Only this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<uuid::Uuid>,
    /// Only segments recorded at or after this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub from: Option<When>,
    /// Only segments recorded before this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub to: Option<When>,
    /// Why the recordings leave the vault (kept in the audit log and the index; without
    /// it the log says that no reason was stated).
    #[arg(long, value_name = "TEXT", default_value = NO_REASON)]
    pub reason: String,
}

/// The arguments of `Command::Verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The export folder.
    pub out: PathBuf,
    /// Exit 0 even when segments are missing (tampering still exits 1).
    #[arg(long)]
    pub allow_gaps: bool,
    /// The vault's receipt public key as you know it (base64), instead of trusting the
    /// copy inside the export.
    #[arg(long, value_name = "BASE64")]
    pub receipt_key: Option<String>,
}

/// The arguments of `Command::Redact`.
#[derive(Debug, Args)]
pub struct RedactArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// Segments of this session.
    #[arg(long, value_name = "ID", required_unless_present = "device")]
    pub session: Option<uuid::Uuid>,
    /// Segments of this device (agent).
    #[arg(long, value_name = "ID")]
    pub device: Option<uuid::Uuid>,
    /// Range start (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub from: When,
    /// Range end, exclusive (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub to: When,
    /// The case the redaction serves.
    #[arg(long, value_name = "NAME")]
    pub case: String,
    /// Why (kept in the audit log and each tombstone).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// The arguments of `Command::Tombstone`.
#[derive(Debug, Args)]
pub struct TombstoneArgs {
    #[command(flatten)]
    pub data: Data,
    /// The segment id.
    #[arg(long, value_name = "ID")]
    pub segment: uuid::Uuid,
}

/// The arguments of `HoldCommand::Add`.
#[derive(Debug, Args)]
pub struct HoldAddArgs {
    #[command(flatten)]
    pub data: Data,
    /// The legal case.
    #[arg(long, value_name = "NAME")]
    pub case: String,
    /// A session to hold (repeatable).
    #[arg(long = "session", value_name = "ID")]
    pub sessions: Vec<uuid::Uuid>,
    /// A device (agent) to hold (repeatable).
    #[arg(long = "device", value_name = "ID")]
    pub devices: Vec<uuid::Uuid>,
    /// Range start (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<When>,
    /// Range end, exclusive (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<When>,
    /// Why (kept in the hold and the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// The arguments of `HoldCommand::List`.
#[derive(Debug, Args)]
pub struct HoldListArgs {
    #[command(flatten)]
    pub data: Data,
    /// Include released holds.
    #[arg(long)]
    pub all: bool,
    /// Print every scope of each hold, one per line.
    #[arg(long)]
    pub scopes: bool,
}

/// The arguments of `HoldCommand::Release`.
#[derive(Debug, Args)]
pub struct HoldReleaseArgs {
    #[command(flatten)]
    pub data: Data,
    /// The hold id (from `hold list`).
    pub id: uuid::Uuid,
    /// Why.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// The arguments of `RetentionCommand::Sweep`.
#[derive(Debug, Args)]
pub struct RetentionSweepArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
}

/// The arguments of `KeysCommand::ExportRecordingIdentity`.
#[derive(Debug, Args)]
pub struct KeysExportRecordingIdentityArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// Why the identity leaves the vault (kept in the audit log; without it the log says
    /// that no reason was stated).
    #[arg(long, value_name = "TEXT", default_value = NO_REASON)]
    pub reason: String,
}

/// A key `keys rotate` replaces.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RotatedKey {
    /// The recording identity (age X25519) every blob is sealed to.
    Recording,
    /// The policy-signing key (Ed25519).
    Policy,
    /// The receipt-signing key (Ed25519; also signs tombstones and audit anchors).
    Receipt,
}

/// The arguments of `KeysCommand::Rotate`.
#[derive(Debug, Args)]
pub struct KeysRotateArgs {
    /// Which key.
    #[arg(value_enum)]
    pub which: RotatedKey,
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
    /// Why (kept in the audit log and the policy history).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// The arguments of `KeysCommand::Status`.
#[derive(Debug, Args)]
pub struct KeysStatusArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
}

/// The arguments of `KeysCommand::RenewTls`.
#[derive(Debug, Args)]
pub struct KeysRenewTlsArgs {
    #[command(flatten)]
    pub data: Data,
    #[command(flatten)]
    pub key: Key,
}

/// The arguments of `TokenCommand::Create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub data: Data,
    /// Team the enrolled device joins.
    #[arg(long)]
    pub team: Option<String>,
    /// Lifetime: 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = vigil_vault_core::when::parse_duration)]
    pub expires: time::Duration,
    /// Why the token is made (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// The arguments of `DeviceCommand::List`.
#[derive(Debug, Args)]
pub struct DeviceListArgs {
    #[command(flatten)]
    pub data: Data,
}

/// The arguments of `DeviceCommand::Revoke`.
#[derive(Debug, Args)]
pub struct DeviceRevokeArgs {
    #[command(flatten)]
    pub data: Data,
    /// The device id (from `device list`).
    pub id: uuid::Uuid,
    /// Why the device is revoked (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// The arguments of `AuditCommand::Verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    /// The deployment's data folder.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A file outside the data folder holding the head verified last (`<seq> <sha256>`):
    /// the log must still hold it (deleting the newest records is caught); rewritten with
    /// the new head when the chain holds. Created if missing.
    #[arg(long, value_name = "FILE")]
    pub anchor: Option<PathBuf>,
}

/// The arguments of `UserCommand::Add`.
#[derive(Debug, Args)]
pub struct UserAddArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// Role: agent, supervisor, qa_analyst, compliance, admin.
    #[arg(long, value_parser = parse_role)]
    pub role: vigil_vault_core::access::Role,
    /// A team the account is limited to (supervisors; repeatable).
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

/// The arguments of `UserCommand::List`.
#[derive(Debug, Args)]
pub struct UserListArgs {
    #[command(flatten)]
    pub data: Data,
}

/// The arguments of `UserCommand::SetRole`.
#[derive(Debug, Args)]
pub struct UserSetRoleArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// The new role.
    #[arg(value_parser = parse_role)]
    pub role: vigil_vault_core::access::Role,
}

/// The arguments of `UserCommand::SetTeams`.
#[derive(Debug, Args)]
pub struct UserSetTeamsArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// A team (repeatable).
    #[arg(long = "team", value_name = "TEAM")]
    pub teams: Vec<String>,
}

/// The arguments of `UserCommand::SetPassword`.
#[derive(Debug, Args)]
pub struct UserSetPasswordArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// Read the password from the first line of stdin.
    #[arg(long)]
    pub password_stdin: bool,
}

/// The arguments of `UserCommand::Disable`.
#[derive(Debug, Args)]
pub struct UserDisableArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// The arguments of `UserCommand::ResetMfa`.
#[derive(Debug, Args)]
pub struct UserResetMfaArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
}

/// The arguments of `UserCommand::Enable`.
#[derive(Debug, Args)]
pub struct UserEnableArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
}

/// The arguments of `UserTokenCommand::Create`.
#[derive(Debug, Args)]
pub struct UserTokenCreateArgs {
    #[command(flatten)]
    pub data: Data,
    /// Login name.
    pub name: String,
    /// Lifetime in days (default: until revoked).
    #[arg(long, value_name = "N")]
    pub expires_days: Option<u32>,
}

/// The arguments of `UserTokenCommand::List`.
#[derive(Debug, Args)]
pub struct UserTokenListArgs {
    #[command(flatten)]
    pub data: Data,
}

/// The arguments of `UserTokenCommand::Revoke`.
#[derive(Debug, Args)]
pub struct UserTokenRevokeArgs {
    #[command(flatten)]
    pub data: Data,
    /// The token's id (from `user token list`).
    pub id: uuid::Uuid,
}
