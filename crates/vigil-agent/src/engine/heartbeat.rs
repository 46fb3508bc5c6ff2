//! What the engine reports once a second while it records: the day's masked and paused time,
//! kept in the spool, and what the next heartbeat tells the vault about this agent.

use std::path::PathBuf;

use vigil_proto::api::{AgentReport, PolicyRefusal, TriggerDown};
use vigil_spool::uploader::AgentReportHandle;

use crate::masking::{DailyUsage, Masking};

/// How often the report and the day's use are updated.
const EVERY_NS: u64 = 1_000_000_000;
/// Pause refusals the vault takes in one heartbeat.
const MAX_REFUSALS: usize = 20;

/// The day's use and the agent's report (enrolled agents only) of one session.
pub(super) struct Heartbeat {
    report: Option<AgentReportHandle>,
    usage: DailyUsage,
    config_dir: PathBuf,
    reported_at: u64,
}

/// Updates what the next heartbeat says about this agent.
fn set_report(report: &AgentReportHandle, f: impl FnOnce(&mut AgentReport)) {
    f(&mut report.lock().unwrap_or_else(|p| p.into_inner()));
}

impl Heartbeat {
    /// Today's use so far, from the spool's `config_dir`.
    pub(super) fn new(report: Option<AgentReportHandle>, config_dir: PathBuf) -> Self {
        Self {
            report,
            usage: DailyUsage::load(&config_dir),
            config_dir,
            reported_at: 0,
        }
    }

    /// Pause time used earlier today.
    pub(super) fn paused_today_ns(&self) -> u64 {
        self.usage.paused_seconds * 1_000_000_000
    }

    /// The recording started under `policy_version`.
    pub(super) fn recording(&self, policy_version: u64) {
        if let Some(r) = &self.report {
            set_report(r, |a| {
                a.agent_version = env!("CARGO_PKG_VERSION").into();
                a.policy_version = policy_version;
                a.recording = true;
            });
        }
    }

    /// A new policy version is in force.
    pub(super) fn policy_applied(&self, version: u64) {
        if let Some(r) = &self.report {
            set_report(r, |a| a.policy_version = version);
        }
    }

    /// The recording stopped.
    pub(super) fn stopped(&self) {
        if let Some(r) = &self.report {
            set_report(r, |a| {
                a.recording = false;
                a.screen = false;
                a.triggers_down.clear();
            });
        }
    }

    /// Once a second: samples the masking state into the day's use and the report.
    pub(super) fn update(&mut self, now: u64, masking: &mut Masking, screen_on: bool) {
        if now < self.reported_at + EVERY_NS {
            return;
        }
        self.reported_at = now;
        let state = masking.state(now, None);
        // Masked time is sampled once a second; pause time is exact (the budget's).
        if !state.masked.is_empty() {
            self.usage.masked_seconds += 1;
        }
        self.usage.paused_seconds = masking.paused_today_ns(now) / 1_000_000_000;
        self.usage.save(&self.config_dir);
        let refusals = masking.take_pause_refusals();
        let Some(r) = self.report.as_ref() else {
            return;
        };
        let usage = &self.usage;
        set_report(r, |a| {
            a.masked = !state.masked.is_empty();
            a.paused = state.paused.is_some();
            a.screen = screen_on;
            a.masked_seconds_today = usage.masked_seconds;
            a.paused_seconds_today = usage.paused_seconds;
            a.triggers_down = state
                .triggers
                .iter()
                .filter(|t| !t.healthy)
                .map(|t| TriggerDown {
                    trigger: t.trigger.clone(),
                    detail: t.detail.clone(),
                })
                .collect();
            a.pause_refusals
                .extend(refusals.into_iter().map(|reason| PolicyRefusal {
                    at: time::OffsetDateTime::now_utc(),
                    reason,
                }));
            // The vault takes at most 20 a heartbeat: keep the newest.
            let excess = a.pause_refusals.len().saturating_sub(MAX_REFUSALS);
            a.pause_refusals.drain(..excess);
        });
    }
}
