//! `vigil-vault user …` and `vigil-vault audit verify`: thin shells over the library.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};
use anyhow::Context;
use vigil_vault_core::accounts::{self, NewAccount};
use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::{cli_actor, Anchor};

use crate::cli::{
    UserAddArgs, UserCommand, UserDisableArgs, UserEnableArgs, UserListArgs, UserResetMfaArgs,
    UserSetPasswordArgs, UserSetRoleArgs, UserSetTeamsArgs, UserTokenCommand, UserTokenCreateArgs,
    UserTokenListArgs, UserTokenRevokeArgs,
};

fn when(secs: Option<i64>) -> String {
    secs.and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(SecretString::from(
        line.trim_end_matches(['\r', '\n']).to_owned(),
    ))
}

/// `vigil-vault user …`: one function per subcommand.
pub fn run(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add(args) => add(args),
        UserCommand::List(args) => list(args),
        UserCommand::SetRole(args) => set_role(args),
        UserCommand::SetTeams(args) => set_teams(args),
        UserCommand::SetPassword(args) => set_password(args),
        UserCommand::Disable(args) => disable(args),
        UserCommand::Enable(args) => enable(args),
        UserCommand::ResetMfa(args) => reset_mfa(args),
        UserCommand::Token { command } => match command {
            UserTokenCommand::Create(args) => create_token(args),
            UserTokenCommand::List(args) => list_tokens(args),
            UserTokenCommand::Revoke(args) => revoke_token(args),
        },
    }
}

/// `vigil-vault user add`.
fn add(args: UserAddArgs) -> anyhow::Result<()> {
    let UserAddArgs {
        data,
        name,
        role,
        teams,
        password_stdin,
    } = args;
    let admin = Admin::open(&data.data)?;
    let password = password_stdin.then(read_password).transpose()?;
    let created = accounts::add_user(
        admin.store(),
        NewAccount {
            name,
            role,
            teams,
            password,
        },
        &cli_actor(),
    )?;
    println!(
        "account {} ({}) created",
        created.account.user.name, created.account.user.role
    );
    if let Some(p) = created.generated_password {
        println!("password: {}", p.expose_secret());
        println!("(shown once: only its argon2id hash is stored)");
    }

    Ok(())
}

/// `vigil-vault user list`.
fn list(args: UserListArgs) -> anyhow::Result<()> {
    let UserListArgs { data } = args;
    let admin = Admin::open(&data.data)?;
    println!("name\trole\tteams\tstatus");
    for a in accounts::list_users(admin.store())? {
        println!(
            "{}\t{}\t{}\t{}",
            a.user.name,
            a.user.role,
            if a.teams.is_empty() {
                "-".into()
            } else {
                a.teams.join(",")
            },
            if a.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }
        );
    }

    Ok(())
}

/// `vigil-vault user set-role`.
fn set_role(args: UserSetRoleArgs) -> anyhow::Result<()> {
    let UserSetRoleArgs { data, name, role } = args;
    accounts::set_role(Admin::open(&data.data)?.store(), &name, role, &cli_actor())?;
    println!("account {name} is now {role}");

    Ok(())
}

/// `vigil-vault user set-teams`.
fn set_teams(args: UserSetTeamsArgs) -> anyhow::Result<()> {
    let UserSetTeamsArgs { data, name, teams } = args;
    accounts::set_teams(
        Admin::open(&data.data)?.store(),
        &name,
        &teams,
        &cli_actor(),
    )?;
    println!("account {name} teams: {}", teams.join(","));

    Ok(())
}

/// `vigil-vault user set-password`.
fn set_password(args: UserSetPasswordArgs) -> anyhow::Result<()> {
    let UserSetPasswordArgs {
        data,
        name,
        password_stdin,
    } = args;
    let password = password_stdin.then(read_password).transpose()?;
    let generated = accounts::set_password(
        Admin::open(&data.data)?.store(),
        &name,
        password,
        &cli_actor(),
    )?;
    println!("password of {name} set; it must be changed at the next login");
    if let Some(p) = generated {
        println!("password: {}", p.expose_secret());
    }

    Ok(())
}

/// `vigil-vault user disable`.
fn disable(args: UserDisableArgs) -> anyhow::Result<()> {
    let UserDisableArgs { data, name, reason } = args;
    accounts::set_disabled(
        Admin::open(&data.data)?.store(),
        &name,
        true,
        &cli_actor(),
        reason.as_deref(),
    )?;
    println!("account {name} disabled");

    Ok(())
}

/// `vigil-vault user reset-mfa`.
fn reset_mfa(args: UserResetMfaArgs) -> anyhow::Result<()> {
    let UserResetMfaArgs { data, name, reason } = args;
    vigil_vault_core::mfa::reset(
        Admin::open(&data.data)?.store(),
        &name,
        &cli_actor(),
        &reason,
    )?;
    println!("second factor of {name} removed: it enrolls a new one at its next login");
    Ok(())
}

/// `vigil-vault user enable`.
fn enable(args: UserEnableArgs) -> anyhow::Result<()> {
    let UserEnableArgs { data, name } = args;
    accounts::set_disabled(
        Admin::open(&data.data)?.store(),
        &name,
        false,
        &cli_actor(),
        None,
    )?;
    println!("account {name} enabled");

    Ok(())
}

/// `vigil-vault user token create`.
fn create_token(args: UserTokenCreateArgs) -> anyhow::Result<()> {
    let UserTokenCreateArgs {
        data,
        name,
        expires_days,
    } = args;
    let created = accounts::create_api_token(
        Admin::open(&data.data)?.store(),
        &name,
        expires_days,
        &cli_actor(),
    )?;
    println!("{}", created.token.expose_secret());
    eprintln!(
        "API token {} for {name}, expires {} (shown once: only its hash is stored)",
        created.id,
        when(created.expires_at)
    );

    Ok(())
}

/// `vigil-vault user token list`.
fn list_tokens(args: UserTokenListArgs) -> anyhow::Result<()> {
    let UserTokenListArgs { data } = args;
    let admin = Admin::open(&data.data)?;
    println!("id\taccount\tcreated\texpires\trevoked");
    for t in admin.store().api_tokens()? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            t.id,
            t.user_name,
            when(Some(t.created_at)),
            when(t.expires_at),
            when(t.revoked_at)
        );
    }

    Ok(())
}

/// `vigil-vault user token revoke`.
fn revoke_token(args: UserTokenRevokeArgs) -> anyhow::Result<()> {
    let UserTokenRevokeArgs { data, id } = args;
    accounts::revoke_api_token(Admin::open(&data.data)?.store(), id, &cli_actor())?;
    println!("API token {id} revoked");

    Ok(())
}

/// The data folder of `audit`: given before or after `verify`.
pub fn audit_data(outer: Option<PathBuf>, inner: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    inner
        .or(outer)
        .context("the data folder is required (--data DIR)")
}

/// Re-checks the audit chain (and the anchored head, if given); an error naming every broken
/// record when it does not hold. The anchor is rewritten with the new head only then.
pub fn audit_verify(data: &Path, list: bool, anchor: Option<&Path>) -> anyhow::Result<()> {
    let admin = Admin::open(data)?;
    let records = admin.audit_records()?;
    if list {
        println!("seq\tat\tactor\taction\ttarget\treason\tclient\tuser_agent");
        for record in &records {
            println!("{}", vigil_vault_core::audit::format_record(record));
        }
    }
    let mut breaks = vigil_vault_core::audit::verify_chain(&records);
    let anchored = match anchor {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(Anchor::parse(&text)?)
        }
        _ => None,
    };
    if let Some(b) = anchored.as_ref().and_then(|a| a.check(&records)) {
        breaks.push(b);
    }
    // The server's signed anchors in the blob store (issue 13 §8).
    let blobs = admin.config().storage.open_blobs(admin.layout())?;
    let receipt_keys = vigil_vault_core::audit_anchor::receipt_public_keys(admin.layout())?;
    let (signed_breaks, held) =
        vigil_vault_core::audit_anchor::check_anchors(blobs.as_ref(), &receipt_keys, &records)?;
    breaks.extend(signed_breaks);
    for b in &breaks {
        eprintln!("chain broken at {b}");
    }
    if !breaks.is_empty() {
        let first = breaks.iter().map(|b| b.seq).min().unwrap_or(0);
        anyhow::bail!(
            "the audit log's hash chain is broken ({} break(s), first at record {first})",
            breaks.len()
        );
    }
    if let (Some(path), Some(head)) = (anchor, Anchor::head(&records)) {
        std::fs::write(path, head.to_text())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if held == 0 && !records.is_empty() && admin.config().audit.anchor_seconds > 0 {
        eprintln!(
            "warning: no signed anchor yet (serve writes one every {} s): a log rewritten whole \
             would not be caught",
            admin.config().audit.anchor_seconds
        );
    }
    let head = records.last().map_or("none", |r| r.sha256.as_str());
    eprintln!(
        "audit chain verified: {} record(s), head {head}; {held} signed anchor(s) hold",
        records.len()
    );
    Ok(())
}
