//! [`LiveStore`] on PostgreSQL.

use postgres::Row;

use super::PostgresStore;
use crate::metadata::live::{AgentStateRow, LiveStore};
use crate::metadata::StoreError;

const COLUMNS: &str = "device_id, reported_at, agent_version, policy_version, recording, \
     screen, masked, paused, backlog_segments, backlog_bytes, last_refusal, last_refusal_at, \
     masked_seconds_today, paused_seconds_today, triggers_down";

fn row(r: &Row) -> Result<AgentStateRow, StoreError> {
    Ok(AgentStateRow {
        device_id: r.try_get(0)?,
        reported_at: r.try_get(1)?,
        agent_version: r.try_get(2)?,
        policy_version: r.try_get(3)?,
        recording: r.try_get(4)?,
        screen: r.try_get(5)?,
        masked: r.try_get(6)?,
        paused: r.try_get(7)?,
        backlog_segments: r.try_get(8)?,
        backlog_bytes: r.try_get(9)?,
        last_refusal: r.try_get(10)?,
        last_refusal_at: r.try_get(11)?,
        masked_seconds_today: r.try_get(12)?,
        paused_seconds_today: r.try_get(13)?,
        triggers_down: r.try_get(14)?,
    })
}

impl LiveStore for PostgresStore {
    fn put_agent_state(&self, s: &AgentStateRow) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO agent_states ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                     $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (device_id) DO UPDATE SET \
                     reported_at = excluded.reported_at, agent_version = excluded.agent_version, \
                     policy_version = excluded.policy_version, recording = excluded.recording, \
                     screen = excluded.screen, masked = excluded.masked, paused = excluded.paused, \
                     backlog_segments = excluded.backlog_segments, \
                     backlog_bytes = excluded.backlog_bytes, \
                     masked_seconds_today = excluded.masked_seconds_today, \
                     paused_seconds_today = excluded.paused_seconds_today, \
                     triggers_down = excluded.triggers_down, \
                     last_refusal = COALESCE(excluded.last_refusal, agent_states.last_refusal), \
                     last_refusal_at = COALESCE(excluded.last_refusal_at, agent_states.last_refusal_at)"
                ),
                &[
                    &s.device_id,
                    &s.reported_at,
                    &s.agent_version,
                    &s.policy_version,
                    &s.recording,
                    &s.screen,
                    &s.masked,
                    &s.paused,
                    &s.backlog_segments,
                    &s.backlog_bytes,
                    &s.last_refusal,
                    &s.last_refusal_at,
                    &s.masked_seconds_today,
                    &s.paused_seconds_today,
                    &s.triggers_down,
                ],
            )?;
            Ok(())
        })
    }

    fn agent_states(&self) -> Result<Vec<AgentStateRow>, StoreError> {
        self.with_client(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM agent_states ORDER BY device_id"),
                &[],
            )?
            .iter()
            .map(row)
            .collect()
        })
    }
}
