//! `vigil-vault`: a thin shell over the `vigil_vault` library.
#![forbid(unsafe_code)]

mod cli;
mod cmd_policy;
mod cmd_recordings;
mod user_cmd;

use std::io::Write;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use clap::Parser;
use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::export::Selection;
use vigil_vault_core::identity::export_recording_identity;
use vigil_vault_core::secrets::VaultKey;
use vigil_vault_core::verify_export::{verify_export, VerifyOptions};
use vigil_vault_core::when::When;
use vigil_vault_core::{init, InitOptions, Vault};
use vigil_vault_http::server::{ServeOptions, Server};

use cli::{
    AuditCommand, Cli, Command, DeviceCommand, HoldCommand, KeysCommand, RetentionCommand,
    TokenCommand,
};

/// Opens the deployment with the vault key from `--key-file` or the environment.
fn open_vault(data: &std::path::Path, key_file: Option<&std::path::Path>) -> anyhow::Result<Vault> {
    let key = VaultKey::resolve(key_file)?;
    Vault::open(data, &key).with_context(|| format!("opening {}", data.display()))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Init {
            data,
            key,
            hosts,
            admin,
            storage,
        } => {
            let key = VaultKey::resolve(key.key_file.as_deref())?;
            let report = init(InitOptions {
                data: data.data.clone(),
                hosts,
                admin,
                key,
                storage: storage.config(),
            })?;
            let l = &report.layout;
            println!("vault initialized in {}", l.root().display());
            println!("  recording recipient: {}", report.recording_recipient);
            println!("  policy public key:   {}", report.policy_public_key);
            println!("  receipt public key:  {}", report.receipt_public_key);
            println!("  server hosts:        {}", report.hosts.join(", "));
            println!(
                "  CA certificate:      {} (give it to agents)",
                l.ca_cert().display()
            );
            println!("admin account: {}", report.admin);
            println!(
                "one-time password: {}",
                report.admin_password.expose_secret()
            );
            println!("(shown once: only its argon2id hash is stored)");
        }
        Command::Serve {
            data,
            key,
            listen,
            max_body_bytes,
        } => {
            let key = VaultKey::resolve(key.key_file.as_deref())?;
            let vault = Vault::open(&data.data, &key)
                .with_context(|| format!("opening {}", data.data.display()))?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let vault = Arc::new(vault);
                let sweep_seconds = vault.config().retention.sweep_seconds;
                let _sweeper = (sweep_seconds > 0).then(|| {
                    vigil_vault_core::retention::spawn_sweeper(
                        vault.clone(),
                        std::time::Duration::from_secs(sweep_seconds),
                    )
                });
                let server = Server::bind(
                    vault,
                    &ServeOptions {
                        listen,
                        max_body_bytes,
                    },
                )
                .await?;
                println!("listening on https://{}", server.local_addr()?);
                std::io::stdout().flush()?;
                server.run(shutdown_signal()).await;
                tracing::info!("stopped");
                anyhow::Ok(())
            })?;
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    data,
                    team,
                    expires,
                    reason,
                },
        } => {
            let admin = Admin::open(&data.data)?;
            let created = admin.create_token(team, expires, &cli_actor(), reason.as_deref())?;
            println!("{}", created.token);
            eprintln!(
                "one-use enrollment token, valid until {}",
                created
                    .expires_at
                    .format(&time::format_description::well_known::Rfc3339)?
            );
        }
        Command::Device { command } => match command {
            DeviceCommand::List { data } => {
                let admin = Admin::open(&data.data)?;
                println!("id\tkey_id\thostname\tuser\tteam\tenrolled_at\tstatus");
                for d in admin.devices()? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        d.id,
                        d.key_id,
                        d.hostname,
                        d.user,
                        d.team.as_deref().unwrap_or("-"),
                        d.enrolled_at,
                        if d.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
            DeviceCommand::Revoke { data, id, reason } => {
                Admin::open(&data.data)?.revoke_device(id, &cli_actor(), reason.as_deref())?;
                println!("device {id} revoked");
            }
        },
        Command::Keys {
            command: KeysCommand::ExportRecordingIdentity { data, key, reason },
        } => {
            let vault = open_vault(&data.data, key.key_file.as_deref())?;
            let identity = export_recording_identity(&vault, &cli_actor(), &reason)?;
            println!("{}", identity.expose_secret());
            eprintln!("recording identity exported; the export is recorded in the audit log");
        }
        Command::Policy { command } => cmd_policy::run(command)?,
        Command::Agents { data, json } => {
            let admin = Admin::open(&data.data)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let agents = vigil_vault_core::live::agents(admin.store(), now, None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&agents)?);
            } else {
                println!("device\thostname\tuser\tteam\tstatus\tscreen\tmasked\tpaused\tbacklog\tpolicy\tagent\tlast_refusal\ttriggers_down");
                for a in agents {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        a.device_id,
                        a.hostname,
                        a.user,
                        a.team.as_deref().unwrap_or("-"),
                        a.status,
                        a.screen,
                        a.masked,
                        a.paused,
                        a.backlog_segments,
                        a.policy_version,
                        a.agent_version.as_deref().unwrap_or("-"),
                        a.last_policy_refusal.map_or("-".into(), |(_, r)| r),
                        if a.triggers_down.is_empty() {
                            "-".to_string()
                        } else {
                            a.triggers_down.join("; ")
                        },
                    );
                }
            }
        }
        Command::Audit {
            data,
            verify,
            command,
        } => match command {
            Some(AuditCommand::Verify {
                data: inner,
                anchor,
            }) => {
                user_cmd::audit_verify(
                    &user_cmd::audit_data(data, inner)?,
                    false,
                    anchor.as_deref(),
                )?;
            }
            None => {
                let data = user_cmd::audit_data(data, None)?;
                if verify {
                    user_cmd::audit_verify(&data, true, None)?;
                } else {
                    let records = Admin::open(&data)?.audit_records()?;
                    println!("seq\tat\tactor\taction\ttarget\treason");
                    for record in &records {
                        println!("{}", vigil_vault_core::audit::format_record(record));
                    }
                }
            }
        },
        Command::User { command } => user_cmd::run(command)?,
        Command::Recordings { data, filter } => cmd_recordings::run(&data.data, filter)?,
        Command::Reindex { data } => {
            let admin = Admin::open(&data.data)?;
            let blobs = admin.config().storage.open_blobs(admin.layout())?;
            let report = vigil_vault_core::search::reindex(admin.store(), blobs.as_ref())?;
            println!(
                "indexed {} segment(s); {} refused (manifest does not verify)",
                report.indexed, report.refused
            );
        }
        Command::Export {
            data,
            key,
            out,
            session,
            device,
            from,
            to,
            reason,
        } => {
            let vault = open_vault(&data.data, key.key_file.as_deref())?;
            let selection = Selection {
                session,
                device,
                from: from.map(When::datetime),
                to: to.map(When::datetime),
            };
            let report =
                vigil_vault_core::export::export(&vault, &out, &selection, &cli_actor(), &reason)?;
            println!(
                "exported {} segment(s) of {} session(s), {} bytes, to {} (audit record {})",
                report.segments,
                report.sessions,
                report.bytes,
                out.display(),
                report.audit_seq
            );
        }
        Command::Verify {
            out,
            allow_gaps,
            receipt_key,
        } => {
            let report = verify_export(&out, &VerifyOptions { receipt_key })?;
            print!("{report}");
            std::io::stdout().flush()?;
            std::process::exit(report.exit_code(allow_gaps));
        }
        Command::Hold { command } => hold(command)?,
        Command::Retention {
            command: RetentionCommand::Sweep { data, key },
        } => {
            let vault = open_vault(&data.data, key.key_file.as_deref())?;
            let r = vigil_vault_core::retention::sweep_as(
                &vault,
                time::OffsetDateTime::now_utc().unix_timestamp(),
                &cli_actor(),
            )?;
            println!(
                "deleted {} screen and {} voice blob(s); {} segment(s) held; {} failed; terms fixed for {}; audit records {:?}",
                r.screen_deleted, r.voice_deleted, r.held, r.failed, r.terms_fixed, r.audit_seqs
            );
            if r.failed > 0 {
                anyhow::bail!(
                    "{} expired blob(s) could not be deleted (see the log)",
                    r.failed
                );
            }
        }
        Command::Redact {
            data,
            key,
            session,
            device,
            from,
            to,
            case,
            reason,
        } => {
            let vault = open_vault(&data.data, key.key_file.as_deref())?;
            let request = vigil_vault_core::redact::RedactRequest {
                session,
                device,
                from: from.datetime(),
                to: to.datetime(),
                case,
                reason,
            };
            let report = vigil_vault_core::redact::redact(&vault, &request, &cli_actor())?;
            for s in &report.segments {
                println!(
                    "redacted {} (session {} #{}) tombstone {}",
                    s.segment_id, s.session_id, s.sequence, s.tombstone_sha256
                );
            }
            println!(
                "{} segment(s) redacted (audit record {})",
                report.segments.len(),
                report.audit_seq
            );
        }
        Command::Tombstone { data, segment } => {
            let admin = Admin::open(&data.data)?;
            let Some(t) = vigil_vault_core::redact::tombstone(admin.store(), segment)? else {
                anyhow::bail!("segment {segment} has no tombstone (not redacted)");
            };
            std::io::stdout().write_all(&t.tombstone)?;
            println!();
        }
        Command::Gaps { data, session } => {
            let admin = Admin::open(&data.data)?;
            for report in admin.gaps(session)? {
                println!("{report}");
            }
        }
    }
    Ok(())
}

fn hold(command: HoldCommand) -> anyhow::Result<()> {
    use vigil_vault_store::metadata::lifecycle::HoldScope;
    match command {
        HoldCommand::Add {
            data,
            case,
            sessions,
            devices,
            from,
            to,
            reason,
        } => {
            let admin = Admin::open(&data.data)?;
            let (from, to) = (from.map(When::unix), to.map(When::unix));
            let mut scopes: Vec<HoldScope> = sessions.into_iter().map(HoldScope::Session).collect();
            if devices.is_empty() {
                if let (Some(from), Some(to)) = (from, to) {
                    scopes.push(HoldScope::Range { from, to });
                }
            }
            scopes.extend(
                devices
                    .into_iter()
                    .map(|device| HoldScope::Device { device, from, to }),
            );
            let hold = vigil_vault_core::holds::add_hold(
                admin.store(),
                &case,
                scopes,
                &cli_actor(),
                &reason,
            )?;
            println!("{}", hold.id);
            eprintln!(
                "hold placed: {}",
                vigil_vault_core::holds::format_hold(&hold)
            );
        }
        HoldCommand::List { data, all, scopes } => {
            let admin = Admin::open(&data.data)?;
            println!("id\tcase\tscopes\tcreated_by\tcreated_at\treason\tstatus");
            for hold in vigil_vault_core::holds::list_holds(admin.store(), all)? {
                println!("{}", vigil_vault_core::holds::format_hold(&hold));
                if scopes {
                    for scope in &hold.scopes {
                        println!("\t{}", vigil_vault_core::holds::format_scope(scope));
                    }
                }
            }
        }
        HoldCommand::Release { data, id, reason } => {
            let admin = Admin::open(&data.data)?;
            vigil_vault_core::holds::release_hold(admin.store(), id, &cli_actor(), &reason)?;
            println!("hold {id} released");
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate() => {},
    }
}

#[cfg(unix)]
async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending().await
}
