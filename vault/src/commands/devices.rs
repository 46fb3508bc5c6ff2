//! Enrollment tokens, devices, their live state and their gaps.

use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;

use crate::cli::{AgentsArgs, DeviceListArgs, DeviceRevokeArgs, GapsArgs, TokenCreateArgs};

/// `vigil-vault token create`.
pub fn create_token(args: TokenCreateArgs) -> anyhow::Result<()> {
    let TokenCreateArgs {
        data,
        team,
        expires,
        reason,
    } = args;
    let admin = Admin::open(&data.data)?;
    let created = admin.create_token(team, expires, &cli_actor(), reason.as_deref())?;
    println!("{}", created.token);
    eprintln!(
        "one-use enrollment token, valid until {}",
        created
            .expires_at
            .format(&time::format_description::well_known::Rfc3339)?
    );

    Ok(())
}

/// `vigil-vault device list`.
pub fn list_devices(args: DeviceListArgs) -> anyhow::Result<()> {
    let DeviceListArgs { data } = args;
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

    Ok(())
}

/// `vigil-vault device revoke`.
pub fn revoke_device(args: DeviceRevokeArgs) -> anyhow::Result<()> {
    let DeviceRevokeArgs { data, id, reason } = args;
    Admin::open(&data.data)?.revoke_device(id, &cli_actor(), reason.as_deref())?;
    println!("device {id} revoked");

    Ok(())
}

/// `vigil-vault agents`.
pub fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    let AgentsArgs { data, json } = args;
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

    Ok(())
}

/// `vigil-vault gaps`.
pub fn gaps(args: GapsArgs) -> anyhow::Result<()> {
    let GapsArgs { data, session } = args;
    let admin = Admin::open(&data.data)?;
    for report in admin.gaps(session)? {
        println!("{report}");
    }

    Ok(())
}
