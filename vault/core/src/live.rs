//! Agents' live state for the console (issue 5): each device with what its latest heartbeat
//! said (recording, screen, masked, paused, backlog, policy version, agent version, the last
//! policy it refused) and whether it is online (a heartbeat within [`OFFLINE_AFTER_SECONDS`]).

use serde::Serialize;
use uuid::Uuid;

use vigil_vault_store::metadata::{MetadataStore, StoreError};

/// A device without a heartbeat for this long is shown offline (agents beat every 30 s).
pub const OFFLINE_AFTER_SECONDS: i64 = 90;

/// One device as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentLive {
    /// The device.
    pub device_id: Uuid,
    /// Its host name.
    pub hostname: String,
    /// The OS user it records for.
    pub user: String,
    /// Its team.
    pub team: Option<String>,
    /// `recording`, `idle`, `offline`, `never_reported` or `revoked`.
    pub status: &'static str,
    /// The latest heartbeat's time, Unix seconds.
    pub reported_at: Option<i64>,
    /// Screen capture runs.
    pub screen: bool,
    /// A mask is in force.
    pub masked: bool,
    /// The agent paused.
    pub paused: bool,
    /// Seconds masked on the agent's latest reported day (UTC).
    pub masked_seconds_today: i64,
    /// Seconds paused on that day (counted against the pause budget).
    pub paused_seconds_today: i64,
    /// Segments waiting in its spool.
    pub backlog_segments: i64,
    /// Their bytes.
    pub backlog_bytes: i64,
    /// The policy version it applies.
    pub policy_version: i64,
    /// The agent's version.
    pub agent_version: Option<String>,
    /// The last policy it refused, and when (Unix seconds).
    pub last_policy_refusal: Option<(i64, String)>,
    /// Mask triggers that did not work at its latest heartbeat (`trigger: why`); empty when
    /// all work or it is offline.
    pub triggers_down: Vec<String>,
}

/// Every device's live state (those of `teams` only, when given), as of `now`.
pub fn agents(
    store: &dyn MetadataStore,
    now: i64,
    teams: Option<&[String]>,
) -> Result<Vec<AgentLive>, StoreError> {
    let states: std::collections::HashMap<Uuid, _> = store
        .agent_states()?
        .into_iter()
        .map(|s| (s.device_id, s))
        .collect();
    let mut out = Vec::new();
    for device in store.devices()? {
        if let Some(teams) = teams {
            if !device.team.as_ref().is_some_and(|t| teams.contains(t)) {
                continue;
            }
        }
        let state = states.get(&device.id);
        let status = match state {
            _ if device.revoked_at.is_some() => "revoked",
            None => "never_reported",
            Some(s) if now - s.reported_at > OFFLINE_AFTER_SECONDS => "offline",
            Some(s) if s.recording => "recording",
            Some(_) => "idle",
        };
        let online = matches!(status, "recording" | "idle");
        out.push(AgentLive {
            device_id: device.id,
            hostname: device.hostname,
            user: device.user,
            team: device.team,
            status,
            reported_at: state.map(|s| s.reported_at),
            screen: online && state.is_some_and(|s| s.screen),
            masked: online && state.is_some_and(|s| s.masked),
            paused: online && state.is_some_and(|s| s.paused),
            masked_seconds_today: state.map_or(0, |s| s.masked_seconds_today),
            paused_seconds_today: state.map_or(0, |s| s.paused_seconds_today),
            backlog_segments: state.map_or(0, |s| s.backlog_segments),
            backlog_bytes: state.map_or(0, |s| s.backlog_bytes),
            policy_version: state.map_or(0, |s| s.policy_version),
            agent_version: state.map(|s| s.agent_version.clone()),
            last_policy_refusal: state.and_then(|s| {
                s.last_refusal
                    .clone()
                    .map(|r| (s.last_refusal_at.unwrap_or(0), r))
            }),
            triggers_down: state
                .filter(|_| online)
                .map(|s| s.triggers_down.lines().map(str::to_string).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}
