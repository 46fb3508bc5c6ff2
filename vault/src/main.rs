//! `vigil-vault`: a thin shell over the `vigil_vault` library.
#![forbid(unsafe_code)]

mod cli;
mod user_cmd;

use std::io::Write;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use clap::Parser;
use vigil_vault::admin::Admin;
use vigil_vault::audit::cli_actor;
use vigil_vault::export::Selection;
use vigil_vault::identity::export_recording_identity;
use vigil_vault::secrets::VaultKey;
use vigil_vault::server::{ServeOptions, Server};
use vigil_vault::verify_export::{verify_export, VerifyOptions};
use vigil_vault::{init, InitOptions, Vault};

use cli::{AuditCommand, Cli, Command, DeviceCommand, KeysCommand, TokenCommand};

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
                let server = Server::bind(
                    Arc::new(vault),
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
                        println!("{}", vigil_vault::audit::format_record(record));
                    }
                }
            }
        },
        Command::User { command } => user_cmd::run(command)?,
        Command::Reindex { data } => {
            let admin = Admin::open(&data.data)?;
            let blobs = admin.config().storage.open_blobs(admin.layout())?;
            let report = vigil_vault::recordings::reindex(admin.store(), blobs.as_ref())?;
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
                from,
                to,
            };
            let report =
                vigil_vault::export::export(&vault, &out, &selection, &cli_actor(), &reason)?;
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
        Command::Gaps { data, session } => {
            let admin = Admin::open(&data.data)?;
            for report in admin.gaps(session)? {
                println!("{report}");
            }
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
