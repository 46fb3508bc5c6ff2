//! Command-line arguments of `vigil-vault`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
        #[arg(long, default_value_t = vigil_vault::server::DEFAULT_MAX_BODY_BYTES)]
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
        #[arg(long, default_value = "24h", value_parser = vigil_vault::admin::parse_duration)]
        expires: time::Duration,
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
    },
}
