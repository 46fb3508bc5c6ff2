//! Agent heartbeats (`POST /v1/heartbeat`): a signed statement of what the device produced per
//! session and what it still holds, so gap reports tell segments in transit from lost ones, and
//! the fleet's backlog shows in the metrics.

use uuid::Uuid;
use vigil_proto::api::{AgentReport, Backlog, SignedHeartbeat};
use vigil_proto::{SignedError, SignedErrorKind};

use crate::Vault;
use vigil_vault_store::metadata::{AgentStateRow, SessionReport, StoreError};

/// Most sessions one heartbeat may report (an agent reports the last day's).
pub const MAX_SESSIONS: usize = 1000;

/// How far a heartbeat's `sent_at` may be from the vault's clock (agents send one every
/// minute or so; a captured one replayed later is refused).
pub const MAX_SKEW_SECONDS: i64 = 300;

/// Why a heartbeat was refused. [`HeartbeatRefusal::code`] is a stable name.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatRefusal {
    /// Not a signed heartbeat.
    #[error(transparent)]
    Envelope(#[from] SignedError),
    /// The key is not an enrolled device's, or the device id is another's.
    #[error("heartbeat from an unknown device")]
    UnknownDevice,
    /// The device was revoked.
    #[error("device {0} is revoked")]
    Revoked(Uuid),
    /// Too many sessions, or numbers out of range.
    #[error("implausible heartbeat: {0}")]
    Implausible(String),
    /// Sent too long ago (or in the future): a replayed heartbeat must not show a dead agent
    /// as alive.
    #[error("heartbeat sent at {0} (Unix seconds), outside the vault's clock by more than {MAX_SKEW_SECONDS} s")]
    Stale(i64),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl HeartbeatRefusal {
    /// A stable, matchable name of the cause.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Envelope(e) if e.kind() == SignedErrorKind::BadSignature => "bad_signature",
            Self::Envelope(_) => "malformed",
            Self::UnknownDevice => "unknown_device",
            Self::Revoked(_) => "revoked_device",
            Self::Implausible(_) => "implausible",
            Self::Stale(_) => "stale",
            Self::Store(_) => "internal",
        }
    }
}

/// What an accepted heartbeat reported.
#[derive(Debug, Clone)]
pub struct HeartbeatAccepted {
    /// The device.
    pub device_id: Uuid,
    /// Its backlog.
    pub backlog: Backlog,
    /// Sessions recorded (sessions of other devices are ignored).
    pub sessions: usize,
}

/// Most policy refusals one heartbeat may report, and the longest reason kept.
const MAX_REFUSALS: usize = 20;
/// Refusals of one kind recorded one by one per heartbeat.
const MAX_AUDITED_REFUSALS: usize = 3;
const MAX_REASON: usize = 300;
/// Most triggers one heartbeat may report down.
const MAX_TRIGGERS: usize = 8;

/// Audit action: an agent refused a policy (bad signature, other signer, …).
pub const ACTION_POLICY_REFUSED: &str = "policy.refused_by_agent";
/// Audit action: an agent refused its user a pause (not allowed, the day's budget spent).
pub const ACTION_PAUSE_REFUSED: &str = "pause.refused_by_agent";

/// Stores what the agent says about itself and audits the policies it refused.
fn record_agent_state(
    vault: &Vault,
    device: Uuid,
    now: i64,
    agent: &AgentReport,
    backlog: &Backlog,
) -> Result<(), HeartbeatRefusal> {
    if agent.policy_refusals.len() > MAX_REFUSALS
        || agent.pause_refusals.len() > MAX_REFUSALS
        || agent.agent_version.len() > 64
        || agent.triggers_down.len() > MAX_TRIGGERS
    {
        return Err(HeartbeatRefusal::Implausible(format!(
            "{} policy refusals, {} pause refusals, {} triggers down",
            agent.policy_refusals.len(),
            agent.pause_refusals.len(),
            agent.triggers_down.len()
        )));
    }
    // Agent text goes into the audit log and the console: printable, one line, bounded.
    let reason = |text: &str| crate::audit::printable(text, MAX_REASON);
    let last = agent.policy_refusals.last();
    vault.store().put_agent_state(&AgentStateRow {
        device_id: device,
        reported_at: now,
        agent_version: agent.agent_version.clone(),
        policy_version: i64::try_from(agent.policy_version).unwrap_or(i64::MAX),
        recording: agent.recording,
        screen: agent.screen,
        masked: agent.masked,
        paused: agent.paused,
        masked_seconds_today: i64::try_from(agent.masked_seconds_today).unwrap_or(i64::MAX),
        paused_seconds_today: i64::try_from(agent.paused_seconds_today).unwrap_or(i64::MAX),
        backlog_segments: i64::try_from(backlog.segments).unwrap_or(i64::MAX),
        backlog_bytes: i64::try_from(backlog.bytes).unwrap_or(i64::MAX),
        last_refusal: last.map(|r| reason(&r.reason)),
        last_refusal_at: last.map(|r| r.at.unix_timestamp()),
        triggers_down: agent
            .triggers_down
            .iter()
            .map(|t| reason(&format!("{}: {}", t.trigger, t.detail)).replace('\n', " "))
            .collect::<Vec<_>>()
            .join("\n"),
    })?;
    for (refusals, action, what) in [
        (&agent.policy_refusals, ACTION_POLICY_REFUSED, "policy"),
        (&agent.pause_refusals, ACTION_PAUSE_REFUSED, "pause"),
    ] {
        // At most MAX_AUDITED_REFUSALS rows per kind and heartbeat, and one more saying how
        // many were left out: a device cannot flood the audit log.
        for refusal in refusals.iter().take(MAX_AUDITED_REFUSALS) {
            tracing::warn!(%device, reason = %reason(&refusal.reason), "agent refused a {what}");
            crate::audit::record(
                vault.store(),
                &format!("device:{device}"),
                action,
                Some(device.to_string()),
                Some(reason(&refusal.reason)),
            )?;
        }
        if refusals.len() > MAX_AUDITED_REFUSALS {
            crate::audit::record(
                vault.store(),
                &format!("device:{device}"),
                action,
                Some(device.to_string()),
                Some(format!(
                    "{} more {what} refusals in this heartbeat, not recorded one by one",
                    refusals.len() - MAX_AUDITED_REFUSALS
                )),
            )?;
        }
    }
    Ok(())
}

/// Refuses a claim of `produced` segments further ahead of what the vault stores for the
/// session than [`crate::gaps::MAX_AHEAD`].
fn check_ahead(vault: &Vault, session: Uuid, produced: i64) -> Result<(), HeartbeatRefusal> {
    match crate::gaps::beyond_reach(vault.store(), session, produced)? {
        Some(last) => Err(HeartbeatRefusal::Implausible(format!(
            "session {session} claims {produced} segments, {last} stored"
        ))),
        None => Ok(()),
    }
}

/// Verifies a heartbeat and stores its session reports.
pub fn record_heartbeat(vault: &Vault, body: &[u8]) -> Result<HeartbeatAccepted, HeartbeatRefusal> {
    let signed = SignedHeartbeat::verify(body, None)?;
    let device = crate::rekey::device_for_key(
        vault.store(),
        signed.signer.as_bytes(),
        crate::clock::now().unix_timestamp(),
    )?
    .filter(|d| d.id == signed.document.device_id)
    .ok_or(HeartbeatRefusal::UnknownDevice)?;
    if device.revoked_at.is_some() {
        return Err(HeartbeatRefusal::Revoked(device.id));
    }
    let hb = signed.document;
    if hb.sessions.len() > MAX_SESSIONS {
        return Err(HeartbeatRefusal::Implausible(format!(
            "{} sessions",
            hb.sessions.len()
        )));
    }
    let now = crate::clock::now().unix_timestamp();
    let sent = hb.sent_at.unix_timestamp();
    if (sent - now).abs() > MAX_SKEW_SECONDS {
        return Err(HeartbeatRefusal::Stale(sent));
    }
    let mut recorded = 0;
    for s in &hb.sessions {
        if s.produced > i64::MAX as u64 || s.pending.iter().any(|p| *p == 0 || *p > s.produced) {
            return Err(HeartbeatRefusal::Implausible(format!(
                "session {} pending outside 1..={}",
                s.session_id, s.produced
            )));
        }
        check_ahead(vault, s.session_id, s.produced as i64)?;
        // A device speaks only for its own sessions.
        match vault.store().session_device(s.session_id)? {
            Some(owner) if owner != device.id => continue,
            _ => {}
        }
        vault.store().put_session_report(&SessionReport {
            session_id: s.session_id,
            device_id: device.id,
            produced: s.produced as i64,
            pending: s.pending.iter().map(|p| *p as i64).collect(),
            closed: s.closed,
            reported_at: now,
        })?;
        recorded += 1;
    }
    if let Some(agent) = &hb.agent {
        record_agent_state(vault, device.id, now, agent, &hb.backlog)?;
    }
    tracing::debug!(device = %device.id, sessions = recorded, backlog = hb.backlog.segments, "heartbeat");
    Ok(HeartbeatAccepted {
        device_id: device.id,
        backlog: hb.backlog,
        sessions: recorded,
    })
}
