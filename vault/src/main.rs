//! `vigil-vault`: a thin shell over the vault's crates. It parses the command line and calls
//! the command's function in [`commands`].
#![forbid(unsafe_code)]

mod cli;
mod commands;

use clap::Parser;

use cli::{Cli, Command, DeviceCommand, HoldCommand, KeysCommand, RetentionCommand, TokenCommand};
use commands::{deployment, devices, evidence, lifecycle, policy, recordings, users};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let command = Cli::parse().command;
    // Every audit record a command writes names the host's command line as its origin; the
    // server's records name their HTTP clients instead.
    let origin =
        (!matches!(command, Command::Serve(_))).then(vigil_vault_core::audit::Origin::command_line);
    vigil_vault_core::audit::with_origin(origin, || run(command))
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => deployment::init(args),
        Command::Serve(args) => deployment::serve(args),
        Command::Keys { command } => match command {
            KeysCommand::ExportRecordingIdentity(args) => {
                deployment::export_recording_identity(args)
            }
            KeysCommand::RenewTls(args) => deployment::renew_tls(args),
            KeysCommand::Rotate(args) => deployment::rotate_key(args),
            KeysCommand::Status(args) => deployment::key_status(args),
        },
        Command::Token {
            command: TokenCommand::Create(args),
        } => devices::create_token(args),
        Command::Device { command } => match command {
            DeviceCommand::List(args) => devices::list_devices(args),
            DeviceCommand::Revoke(args) => devices::revoke_device(args),
        },
        Command::Agents(args) => devices::agents(args),
        Command::Gaps(args) => devices::gaps(args),
        Command::Policy { command } => policy::run(command),
        Command::User { command } => users::run(command),
        Command::Recordings(args) => recordings::run(&args.data.data, args.filter),
        Command::Reindex(args) => evidence::reindex(args),
        Command::Audit {
            data,
            verify,
            command,
        } => evidence::audit(data, verify, command),
        Command::Export(args) => evidence::export(args),
        Command::Verify(args) => evidence::verify(args),
        Command::Hold { command } => match command {
            HoldCommand::Add(args) => lifecycle::add_hold(args),
            HoldCommand::List(args) => lifecycle::list_holds(args),
            HoldCommand::Release(args) => lifecycle::release_hold(args),
        },
        Command::Retention {
            command: RetentionCommand::Sweep(args),
        } => lifecycle::sweep(args),
        Command::Redact(args) => lifecycle::redact(args),
        Command::Tombstone(args) => lifecycle::tombstone(args),
    }
}
