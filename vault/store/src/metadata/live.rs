//! The live state of each agent, from its latest heartbeat (issue 5): what the console shows
//! (recording, screen, masked, paused, backlog, policy version, agent version). One row per
//! device, replaced by each heartbeat.

use uuid::Uuid;

use super::StoreError;

/// What a device last said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStateRow {
    /// The device.
    pub device_id: Uuid,
    /// When the heartbeat arrived, Unix seconds.
    pub reported_at: i64,
    /// The agent's version.
    pub agent_version: String,
    /// The policy version it applies.
    pub policy_version: i64,
    /// A recording runs.
    pub recording: bool,
    /// Screen capture runs.
    pub screen: bool,
    /// A mask is in force.
    pub masked: bool,
    /// The agent paused.
    pub paused: bool,
    /// Seconds masked today (UTC day), as it reported.
    pub masked_seconds_today: i64,
    /// Seconds paused today (UTC day), as it reported.
    pub paused_seconds_today: i64,
    /// Segments waiting in its spool.
    pub backlog_segments: i64,
    /// Their bytes.
    pub backlog_bytes: i64,
    /// The latest policy refusal it reported (reason), if any.
    pub last_refusal: Option<String>,
    /// When that refusal happened, Unix seconds.
    pub last_refusal_at: Option<i64>,
    /// Mask triggers down, one `trigger: detail` a line (empty: all work).
    pub triggers_down: String,
}

/// Live state operations of the metadata store.
pub trait LiveStore {
    /// Replaces a device's live state.
    fn put_agent_state(&self, state: &AgentStateRow) -> Result<(), StoreError>;
    /// Every device's live state.
    fn agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError>;
}

impl<T: LiveStore + ?Sized> LiveStore for Box<T> {
    fn put_agent_state(&self, state: &AgentStateRow) -> Result<(), StoreError> {
        (**self).put_agent_state(state)
    }
    fn agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        (**self).agent_states()
    }
}
