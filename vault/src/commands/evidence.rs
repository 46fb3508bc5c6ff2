//! Evidence: exports and their offline check, and the search index rebuilt.

use std::io::Write;

use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::export::Selection;
use vigil_vault_core::verify_export::{verify_export, VerifyOptions};
use vigil_vault_core::when::When;

use super::open_vault;
use super::users;
use crate::cli::{AuditCommand, AuditVerifyArgs, ExportArgs, ReindexArgs, VerifyArgs};

/// `vigil-vault export`.
pub fn export(args: ExportArgs) -> anyhow::Result<()> {
    let ExportArgs {
        data,
        key,
        out,
        session,
        device,
        from,
        to,
        reason,
    } = args;
    let vault = open_vault(&data.data, key.key_file.as_deref())?;
    let selection = Selection {
        session,
        device,
        from: from.map(When::datetime),
        to: to.map(When::datetime),
    };
    let report = vigil_vault_core::export::export(&vault, &out, &selection, &cli_actor(), &reason)?;
    println!(
        "exported {} segment(s) of {} session(s), {} bytes, to {} (audit record {})",
        report.segments,
        report.sessions,
        report.bytes,
        out.display(),
        report.audit_seq
    );

    Ok(())
}

/// `vigil-vault verify`: exits 0, 1 (altered) or 2 (gaps).
pub fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let VerifyArgs {
        out,
        allow_gaps,
        receipt_key,
    } = args;
    let report = verify_export(&out, &VerifyOptions { receipt_key })?;
    print!("{report}");
    std::io::stdout().flush()?;
    std::process::exit(report.exit_code(allow_gaps));
}

/// `vigil-vault reindex`.
pub fn reindex(args: ReindexArgs) -> anyhow::Result<()> {
    let ReindexArgs { data } = args;
    let admin = Admin::open(&data.data)?;
    let blobs = admin.config().storage.open_blobs(admin.layout())?;
    let report = vigil_vault_core::search::reindex(admin.store(), blobs.as_ref())?;
    println!(
        "indexed {} segment(s); {} refused (manifest does not verify)",
        report.indexed, report.refused
    );

    Ok(())
}

/// `vigil-vault audit [--verify]` and `vigil-vault audit verify [--anchor FILE]`.
pub fn audit(
    data: Option<std::path::PathBuf>,
    verify: bool,
    command: Option<AuditCommand>,
) -> anyhow::Result<()> {
    match command {
        Some(AuditCommand::Verify(AuditVerifyArgs {
            data: inner,
            anchor,
        })) => users::audit_verify(&users::audit_data(data, inner)?, false, anchor.as_deref()),
        None => {
            let data = users::audit_data(data, None)?;
            if verify {
                return users::audit_verify(&data, true, None);
            }
            let records = Admin::open(&data)?.audit_records()?;
            println!("seq\tat\tactor\taction\ttarget\treason\tclient\tuser_agent");
            for record in &records {
                println!("{}", vigil_vault_core::audit::format_record(record));
            }
            Ok(())
        }
    }
}
