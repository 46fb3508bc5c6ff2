//! `vigil-vault policy get|set|diff|history`: recording policy for IT automation. Documents are
//! JSON policy layers (only the fields a layer sets); `set` and `diff` read one from a file or
//! standard input (`-`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use uuid::Uuid;
use vigil_proto::policy::PolicyLayer;
use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::policy::{PolicySnapshot, Scope};
use vigil_vault_core::policy_change::{diff, parse_document, set_layer, Editor};

/// Which layer (exactly one).
#[derive(Debug, Args)]
#[group(id = "scope", multiple = false)]
pub struct ScopeArgs {
    /// The organization defaults.
    #[arg(long)]
    org: bool,
    /// A team's overrides (the team enrollment tokens name).
    #[arg(long, value_name = "NAME")]
    team: Option<String>,
    /// One device's overrides.
    #[arg(long, value_name = "ID")]
    device: Option<Uuid>,
}

impl ScopeArgs {
    fn scope(&self) -> Option<Scope> {
        match (&self.team, self.device) {
            (Some(t), _) => Some(Scope::Team(t.clone())),
            (_, Some(d)) => Some(Scope::Device(d)),
            _ => self.org.then_some(Scope::Organization),
        }
    }

    fn required(&self) -> anyhow::Result<Scope> {
        self.scope()
            .context("name the layer: --org, --team NAME or --device ID")
    }
}

/// `vigil-vault policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Prints a layer as set (JSON), or with `--effective` a device's resolved policy and version.
    Get(PolicyGetArgs),
    /// Replaces a layer with the document in FILE (`-`: standard input); validated against every
    /// policy it affects, versioned and audited. Agents receive it within seconds.
    Set(PolicySetArgs),
    /// Shows what `set` with this document would change in the layer (`field: old -> new`).
    Diff(PolicyDiffArgs),
    /// Every change (of one layer, or all): version, time, scope, author, reason.
    History(PolicyHistoryArgs),
}

/// The arguments of `PolicyCommand::Get`.
#[derive(Debug, Args)]
pub struct PolicyGetArgs {
    /// Data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The layer to print.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// A device's effective policy (organization, then team, then device).
    #[arg(long, value_name = "ID", conflicts_with = "scope")]
    pub effective: Option<Uuid>,
}

/// The arguments of `PolicyCommand::Set`.
#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// Data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The layer to replace.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The new layer (JSON).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    /// Why (kept in the audit log).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// The arguments of `PolicyCommand::Diff`.
#[derive(Debug, Args)]
pub struct PolicyDiffArgs {
    /// Data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The layer to compare with.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The proposed layer (JSON).
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
}

/// The arguments of `PolicyCommand::History`.
#[derive(Debug, Args)]
pub struct PolicyHistoryArgs {
    /// Data folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Only this layer.
    #[command(flatten)]
    pub scope: ScopeArgs,
}

fn read_document(file: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    }
    Ok(text)
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// Runs a policy command; the exit status is the caller's (errors are `anyhow`).
pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Get(args) => get(args),
        PolicyCommand::Set(args) => set(args),
        PolicyCommand::Diff(args) => diff_layer(args),
        PolicyCommand::History(args) => history(args),
    }
}

/// `vigil-vault policy get`.
fn get(args: PolicyGetArgs) -> anyhow::Result<()> {
    let PolicyGetArgs {
        data,
        scope,
        effective,
    } = args;
    let admin = Admin::open(&data)?;
    let snapshot = PolicySnapshot::load(admin.store())?;
    if let Some(id) = effective {
        let device = admin
            .devices()?
            .into_iter()
            .find(|d| d.id == id)
            .with_context(|| format!("no device with id {id}"))?;
        let (version, policy) = snapshot.effective(&device)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "device": id,
                "version": version,
                "policy": policy,
            }))?
        );
        return Ok(());
    }
    let scope = scope.scope().unwrap_or(Scope::Organization);
    let layer = snapshot.layer(&scope);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "scope": scope.key(),
            "version": layer.map_or(0, |l| l.version),
            "layer": layer.map(|l| l.layer.clone()).unwrap_or_default(),
        }))?
    );

    Ok(())
}

/// `vigil-vault policy set`.
fn set(args: PolicySetArgs) -> anyhow::Result<()> {
    let PolicySetArgs {
        data,
        scope,
        file,
        reason,
    } = args;
    let admin = Admin::open(&data)?;
    let document = read_document(&file)?;
    let scope = scope.required()?;
    // The command line holds the data folder (and so the database): it may relax policy, and
    // the audit log says when it did.
    let actor = cli_actor();
    let change = set_layer(
        admin.store(),
        &scope,
        &document,
        Editor {
            actor: &actor,
            may_relax: true,
        },
        vigil_vault_core::audit::stated_reason(reason.as_deref()).as_deref(),
    )?;
    println!(
        "policy {scope} set: version {} ({} device(s) affected)",
        change.version, change.devices_affected
    );

    Ok(())
}

/// `vigil-vault policy diff`.
fn diff_layer(args: PolicyDiffArgs) -> anyhow::Result<()> {
    let PolicyDiffArgs { data, scope, file } = args;
    let admin = Admin::open(&data)?;
    let scope = scope.required()?;
    let proposed = parse_document(&scope, &read_document(&file)?)?;
    let snapshot = PolicySnapshot::load(admin.store())?;
    let current: PolicyLayer = snapshot
        .layer(&scope)
        .map(|l| l.layer.clone())
        .unwrap_or_default();
    let lines = diff(&current, &proposed);
    if lines.is_empty() {
        println!("no change");
    }
    for line in lines {
        println!("{line}");
    }

    Ok(())
}

/// `vigil-vault policy history`.
fn history(args: PolicyHistoryArgs) -> anyhow::Result<()> {
    let PolicyHistoryArgs { data, scope } = args;
    let admin = Admin::open(&data)?;
    let key = scope.scope().map(|s| s.key());
    println!("version\tat\tscope\tauthor\treason\tdocument");
    for row in admin.store().policy_history(key.as_deref())? {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            row.version,
            rfc3339(row.at),
            row.scope,
            row.author,
            row.reason.as_deref().unwrap_or("-"),
            row.document
        );
    }

    Ok(())
}
