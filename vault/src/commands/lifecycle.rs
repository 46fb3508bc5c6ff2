//! A recording's end of life: legal holds, the retention sweep, redaction, tombstones.

use std::io::Write;

use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::when::When;
use vigil_vault_store::metadata::lifecycle::HoldScope;

use super::open_vault;
use crate::cli::{
    HoldAddArgs, HoldListArgs, HoldReleaseArgs, RedactArgs, RetentionSweepArgs, TombstoneArgs,
};

/// `vigil-vault hold add`.
pub fn add_hold(args: HoldAddArgs) -> anyhow::Result<()> {
    let HoldAddArgs {
        data,
        case,
        sessions,
        devices,
        from,
        to,
        reason,
    } = args;
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
    let hold =
        vigil_vault_core::holds::add_hold(admin.store(), &case, scopes, &cli_actor(), &reason)?;
    println!("{}", hold.id);
    eprintln!(
        "hold placed: {}",
        vigil_vault_core::holds::format_hold(&hold)
    );

    Ok(())
}

/// `vigil-vault hold list`.
pub fn list_holds(args: HoldListArgs) -> anyhow::Result<()> {
    let HoldListArgs { data, all, scopes } = args;
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

    Ok(())
}

/// `vigil-vault hold release`.
pub fn release_hold(args: HoldReleaseArgs) -> anyhow::Result<()> {
    let HoldReleaseArgs { data, id, reason } = args;
    let admin = Admin::open(&data.data)?;
    vigil_vault_core::holds::release_hold(admin.store(), id, &cli_actor(), &reason)?;
    println!("hold {id} released");

    Ok(())
}

/// `vigil-vault retention sweep`.
pub fn sweep(args: RetentionSweepArgs) -> anyhow::Result<()> {
    let RetentionSweepArgs { data, key } = args;
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
    let orphans = vigil_vault_core::orphans::sweep_orphans(
        &vault,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &cli_actor(),
    )?;
    println!(
        "removed {} orphaned file(s) (segments without a row) and {} staged file(s) never committed",
        orphans.files.len(),
        orphans.staged
    );
    if r.failed > 0 {
        anyhow::bail!(
            "{} expired blob(s) could not be deleted (see the log)",
            r.failed
        );
    }

    Ok(())
}

/// `vigil-vault redact`.
pub fn redact(args: RedactArgs) -> anyhow::Result<()> {
    let RedactArgs {
        data,
        key,
        session,
        device,
        from,
        to,
        case,
        reason,
    } = args;
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

    Ok(())
}

/// `vigil-vault tombstone`.
pub fn tombstone(args: TombstoneArgs) -> anyhow::Result<()> {
    let TombstoneArgs { data, segment } = args;
    let admin = Admin::open(&data.data)?;
    let Some(t) = vigil_vault_core::redact::tombstone(admin.store(), segment)? else {
        anyhow::bail!("segment {segment} has no tombstone (not redacted)");
    };
    std::io::stdout().write_all(&t.tombstone)?;
    println!();

    Ok(())
}
