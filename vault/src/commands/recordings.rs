//! `vigil-vault recordings`: the recordings search of the console's API, for compliance
//! scripts (under which policy was this recorded? what did this agent record that day?).
//! Audited as `recording.search` by the CLI's actor, as the API's searches are.

use clap::Args;
use vigil_vault_core::admin::Admin;
use vigil_vault_core::audit::cli_actor;
use vigil_vault_core::when::When;
use vigil_vault_store::metadata::RecordingFilter;

/// The search's filters (every given one must hold).
#[derive(Debug, Args)]
pub struct RecordingFilterArgs {
    /// Only this recorded (OS) user.
    #[arg(long)]
    agent: Option<String>,
    /// Only this team.
    #[arg(long)]
    team: Option<String>,
    /// Only segments ending at or after this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    from: Option<When>,
    /// Only segments starting before this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    to: Option<When>,
    /// Only this call.
    #[arg(long)]
    call_id: Option<String>,
    /// Only masked (true) or unmasked (false) segments.
    #[arg(long)]
    masked: Option<bool>,
    /// Only segments recorded under this policy version (0: the device's local settings).
    #[arg(long)]
    policy_version: Option<i64>,
    /// At most this many rows (1 to 5000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=5000))]
    limit: u16,
    /// JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs the search on the deployment at `data` and prints what it found.
pub fn run(data: &std::path::Path, args: RecordingFilterArgs) -> anyhow::Result<()> {
    let admin = Admin::open(data)?;
    let filter = RecordingFilter {
        agent: args.agent,
        team: args.team,
        teams: None,
        from: args.from.map(When::unix),
        to: args.to.map(When::unix),
        call_id: args.call_id,
        masked: args.masked,
        policy_version: args.policy_version,
        limit: usize::from(args.limit),
        session: None,
    };
    let found = vigil_vault_core::search::search_as(admin.store(), &cli_actor(), &filter)?;
    // The table's columns are the API's fields, in this order.
    const COLUMNS: [&str; 9] = [
        "session",
        "sequence",
        "agent",
        "team",
        "call_id",
        "masked",
        "policy_version",
        "start",
        "end",
    ];
    if !args.json {
        println!("{}", COLUMNS.join("\t"));
    }
    for r in &found {
        let entry = vigil_vault_core::search::recording_json(r);
        if args.json {
            println!("{entry}");
            continue;
        }
        let cell = |key: &str| match &entry[key] {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => "-".into(),
            other => other.to_string(),
        };
        println!("{}", COLUMNS.map(cell).join("\t"));
    }
    Ok(())
}
