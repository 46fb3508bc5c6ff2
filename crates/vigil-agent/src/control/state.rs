//! The agent's state as the control API and `vigil-agent status` report it.

use serde::{Deserialize, Serialize};

/// A mask in force now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveMask {
    /// Why.
    pub reason: String,
    /// The trigger (`accessibility`, `extension`, `api`, `dtmf`, `pause`, `watchdog`).
    pub trigger: String,
    /// The rule that matched, for field masks.
    pub rule_id: Option<String>,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    /// Screen action: `full`, `region` or `none`.
    pub screen: String,
    /// Whether both voice tracks are silenced.
    pub audio: bool,
}

/// The manual pause in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PauseState {
    /// Why the agent paused.
    pub reason: String,
    /// When recording resumes by itself (RFC 3339, UTC).
    pub until: String,
}

/// Whether a trigger works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerHealth {
    /// The trigger.
    pub trigger: String,
    /// Whether it works now.
    pub healthy: bool,
    /// Why not, when it does not.
    pub detail: String,
}

/// A field whose card data may still be on screen, masked while it can be seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldFieldState {
    /// Who follows it (`extension`, `accessibility`).
    pub trigger: String,
    /// Its key there.
    pub key: String,
    /// The rule that matched it.
    pub rule_id: String,
    /// What is masked for it now: `region`, `full` (position unknown) or `none` (hidden).
    pub screen: String,
}

/// Everything the status shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    /// Whether a recording runs.
    pub recording: bool,
    /// The session being recorded.
    pub session: Option<String>,
    /// Masks in force now (empty: nothing masked).
    pub masked: Vec<ActiveMask>,
    /// The manual pause, if any.
    pub paused: Option<PauseState>,
    /// Ids of masks started through the API that are still open.
    pub api_masks: Vec<u64>,
    /// Health of each watcher that reported.
    pub triggers: Vec<TriggerHealth>,
    /// Fields held after focus left them (masked while they can be seen).
    #[serde(default)]
    pub held: Vec<HeldFieldState>,
}

impl AgentState {
    /// Human-readable lines for `vigil-agent status`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let session = self.session.as_deref().unwrap_or("-");
        out.push_str(&format!(
            "recording: {}  (session {session})\n",
            if self.recording { "yes" } else { "no" }
        ));
        match &self.paused {
            Some(p) => out.push_str(&format!("paused: yes, until {} ({})\n", p.until, p.reason)),
            None => out.push_str("paused: no\n"),
        }
        if self.masked.is_empty() {
            out.push_str("masked: no\n");
        }
        for m in &self.masked {
            out.push_str(&format!(
                "masked: {} since {} (trigger {}, screen {}, audio {})\n",
                m.reason,
                m.since,
                m.trigger,
                m.screen,
                if m.audio { "silenced" } else { "kept" }
            ));
        }
        for h in &self.held {
            out.push_str(&format!(
                "held: {} field {} ({}), screen {}\n",
                h.trigger, h.key, h.rule_id, h.screen
            ));
        }
        for t in &self.triggers {
            out.push_str(&format!(
                "trigger {}: {}{}\n",
                t.trigger,
                if t.healthy { "healthy" } else { "DOWN" },
                if t.detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", t.detail)
                }
            ));
        }
        out
    }
}
