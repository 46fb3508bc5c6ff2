//! Creating and serving a deployment, and handing its recording identity out.

use std::io::Write;
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use anyhow::Context;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::identity;
use vigil_vault_core::secrets::VaultKey;
use vigil_vault_core::{init as init_deployment, InitOptions};
use vigil_vault_http::server::{ServeOptions, Server};

use super::open_vault;
use crate::cli::{
    InitArgs, KeysExportRecordingIdentityArgs, KeysRenewTlsArgs, KeysRotateArgs, KeysStatusArgs,
    RotatedKey, ServeArgs,
};

/// `vigil-vault init`.
pub fn init(args: InitArgs) -> anyhow::Result<()> {
    let InitArgs {
        data,
        key,
        hosts,
        admin,
        storage,
        escrow_recipients,
    } = args;
    let key = VaultKey::resolve(key.key_file.as_deref())?;
    let report = init_deployment(InitOptions {
        data: data.data.clone(),
        hosts,
        admin,
        key,
        storage: storage.config(),
        escrow_recipients,
    })?;
    let l = &report.layout;
    println!("vault initialized in {}", l.root().display());
    println!("  recording recipient: {}", report.recording_recipient);
    for escrow in &report.escrow_recipients {
        println!("  escrow recipient:    {escrow} (its identity stays offline)");
    }
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

    Ok(())
}

/// `vigil-vault serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        data,
        key,
        listen,
        max_body_bytes,
        request_timeout,
        max_in_flight,
        device_uploads_per_second,
        device_upload_burst,
        device_uploads_in_flight,
        ingest_concurrency,
    } = args;
    let key = VaultKey::resolve(key.key_file.as_deref())?;
    let layout = vigil_vault_store::Layout::new(&data.data);
    if vigil_vault_core::tls::renewal_due(&layout, time::OffsetDateTime::now_utc()) {
        let until =
            vigil_vault_core::tls::renew_server_certificate(&data.data, &key, "vault:serve")?;
        tracing::info!(until = %until, "server certificate renewed before its expiry");
    }
    let vault = vigil_vault_core::Vault::open(&data.data, &key)
        .with_context(|| format!("opening {}", data.data.display()))?;
    // Keys past their cryptoperiod are said at every start (and by `keys status`).
    for due in vigil_vault_core::keys::overdue(&vault)? {
        tracing::warn!(
            key = %due.name,
            cryptoperiod_days = due.cryptoperiod_days,
            "key past its cryptoperiod: rotate it (`vigil-vault keys rotate`, `vigil-agent rekey`)"
        );
    }
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
        let anchor_seconds = vault.config().audit.anchor_seconds;
        let _anchorer = (anchor_seconds > 0).then(|| {
            vigil_vault_core::audit_anchor::spawn_anchorer(
                vault.clone(),
                std::time::Duration::from_secs(anchor_seconds),
            )
        });
        let server = Server::bind(
            vault,
            &ServeOptions {
                listen,
                max_body_bytes,
                request_timeout: std::time::Duration::from_secs(request_timeout.max(1)),
                max_in_flight,
                device_uploads_per_second,
                device_upload_burst,
                device_uploads_in_flight,
                ingest_concurrency: ingest_concurrency
                    .unwrap_or_else(vigil_vault_http::server::default_ingest_concurrency),
            },
        )
        .await?;
        println!("listening on https://{}", server.local_addr()?);
        std::io::stdout().flush()?;
        server.run(shutdown_signal()).await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })?;

    Ok(())
}

/// `vigil-vault keys export-recording-identity`.
pub fn export_recording_identity(args: KeysExportRecordingIdentityArgs) -> anyhow::Result<()> {
    let KeysExportRecordingIdentityArgs { data, key, reason } = args;
    let vault = open_vault(&data.data, key.key_file.as_deref())?;
    let identity = identity::export_recording_identity(&vault, &cli_actor(), &reason)?;
    println!("{}", identity.expose_secret());
    eprintln!("recording identity exported; the export is recorded in the audit log");

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

/// `vigil-vault keys renew-tls`.
pub fn rotate_key(args: KeysRotateArgs) -> anyhow::Result<()> {
    use vigil_vault_core::keys::{rotate, KeyKind};
    let KeysRotateArgs {
        which,
        data,
        key,
        reason,
    } = args;
    let key = VaultKey::resolve(key.key_file.as_deref())?;
    let kind = match which {
        RotatedKey::Recording => KeyKind::Recording,
        RotatedKey::Policy => KeyKind::Policy,
        RotatedKey::Receipt => KeyKind::Receipt,
    };
    let rotated = rotate(&data.data, &key, kind, &cli_actor(), &reason)?;
    println!(
        "{} key rotated: {} (was {}); announced to agents in policy version {}",
        kind.as_str(),
        rotated.new,
        rotated.old,
        rotated.policy_version
    );
    Ok(())
}

/// `keys status`: one line per key; exits 1 when one is past its cryptoperiod.
pub fn key_status(args: KeysStatusArgs) -> anyhow::Result<()> {
    let KeysStatusArgs { data, key } = args;
    let key = VaultKey::resolve(key.key_file.as_deref())?;
    let keys = vigil_vault_core::keys::status(&data.data, &key)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    println!("key\tage_days\tcryptoperiod_days\tstate\tpublic");
    for k in &keys {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            k.name,
            (now - k.created_at).max(0) / 86_400,
            k.cryptoperiod_days,
            if k.due { "DUE" } else { "ok" },
            k.public
        );
    }
    let due = keys.iter().filter(|k| k.due).count();
    if due > 0 {
        anyhow::bail!(
            "{due} key(s) past their cryptoperiod: rotate them (`vigil-vault keys rotate`)"
        );
    }
    Ok(())
}

pub fn renew_tls(args: KeysRenewTlsArgs) -> anyhow::Result<()> {
    let KeysRenewTlsArgs { data, key } = args;
    let key = VaultKey::resolve(key.key_file.as_deref())?;
    let until = vigil_vault_core::tls::renew_server_certificate(&data.data, &key, &cli_actor())?;
    println!(
        "server certificate renewed, valid until {}; restart `serve` to use it",
        until.format(&time::format_description::well_known::Rfc3339)?
    );
    Ok(())
}
