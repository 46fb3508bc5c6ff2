//! [`LiveStore`] on SQLite.

use rusqlite::{params, Row};

use super::rows::uuid_col;
use super::SqliteStore;
use crate::metadata::live::{AgentStateRow, LiveStore};
use crate::metadata::StoreError;

const COLUMNS: &str = "device_id, reported_at, agent_version, policy_version, recording, \
     screen, masked, paused, backlog_segments, backlog_bytes, last_refusal, last_refusal_at, \
     masked_seconds_today, paused_seconds_today, triggers_down";

fn row(r: &Row<'_>) -> rusqlite::Result<AgentStateRow> {
    Ok(AgentStateRow {
        device_id: uuid_col(r, 0)?,
        reported_at: r.get(1)?,
        agent_version: r.get(2)?,
        policy_version: r.get(3)?,
        recording: r.get(4)?,
        screen: r.get(5)?,
        masked: r.get(6)?,
        paused: r.get(7)?,
        backlog_segments: r.get(8)?,
        backlog_bytes: r.get(9)?,
        last_refusal: r.get(10)?,
        last_refusal_at: r.get(11)?,
        masked_seconds_today: r.get(12)?,
        paused_seconds_today: r.get(13)?,
        triggers_down: r.get(14)?,
    })
}

impl LiveStore for SqliteStore {
    fn put_agent_state(&self, s: &AgentStateRow) -> Result<(), StoreError> {
        let conn = self.conn();
        // A heartbeat without a new refusal keeps the last one shown.
        conn.prepare_cached(&format!(
            "INSERT INTO agent_states ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
             ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT (device_id) DO UPDATE SET reported_at = excluded.reported_at, \
             agent_version = excluded.agent_version, policy_version = excluded.policy_version, \
             recording = excluded.recording, screen = excluded.screen, masked = excluded.masked, \
             paused = excluded.paused, backlog_segments = excluded.backlog_segments, \
             backlog_bytes = excluded.backlog_bytes, \
             masked_seconds_today = excluded.masked_seconds_today, \
             paused_seconds_today = excluded.paused_seconds_today, \
             triggers_down = excluded.triggers_down, \
             last_refusal = COALESCE(excluded.last_refusal, agent_states.last_refusal), \
             last_refusal_at = COALESCE(excluded.last_refusal_at, agent_states.last_refusal_at)"
        ))?
        .execute(params![
            s.device_id.to_string(),
            s.reported_at,
            s.agent_version,
            s.policy_version,
            s.recording,
            s.screen,
            s.masked,
            s.paused,
            s.backlog_segments,
            s.backlog_bytes,
            s.last_refusal,
            s.last_refusal_at,
            s.masked_seconds_today,
            s.paused_seconds_today,
            s.triggers_down
        ])?;
        Ok(())
    }

    fn agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM agent_states ORDER BY device_id"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
