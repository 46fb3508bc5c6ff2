//! The PostgreSQL schema and the upgrades of databases made by earlier versions.

use postgres::Client;

use crate::metadata::StoreError;

pub(super) const SCHEMA_VERSION: i64 = 2;

pub(super) const SCHEMA: &str = include_str!("../schema_pg.sql");

/// Serializes schema creation between vaults starting at the same time (an advisory lock key).
pub(super) const SCHEMA_LOCK: i64 = 0x5669_6769_6c53_6368;

pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    let has_schema: bool = tx
        .query_one("SELECT to_regclass('vigil_schema') IS NOT NULL", &[])?
        .get(0);
    let version: Option<i64> = if has_schema {
        tx.query_opt("SELECT max(version) FROM vigil_schema", &[])?
            .and_then(|r| r.get(0))
    } else {
        None
    };
    match version {
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew {
                found,
                known: SCHEMA_VERSION,
            })
        }
        Some(found) if found == SCHEMA_VERSION => {}
        // Every statement of the schema is idempotent: an older database runs it again.
        Some(_) | None => {
            tx.batch_execute(SCHEMA)?;
            tx.execute(
                "INSERT INTO vigil_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )?;
        }
    }
    tx.batch_execute(POLICY_SCHEMA)?;
    tx.batch_execute(DEVICE_KEYS_SCHEMA)?;
    tx.batch_execute(LIVE_SCHEMA)?;
    tx.commit()?;
    Ok(())
}

/// Brings a database of any earlier layout up to date: the schema's statements are all
/// idempotent (`IF NOT EXISTS`, `OR REPLACE`, `ADD COLUMN IF NOT EXISTS`), so running them
/// again under the schema lock adds what is missing.
pub(super) fn migrate_access(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute(SCHEMA)?;
    tx.commit()?;
    Ok(())
}

/// Created at every start (idempotent): deployments made before policies existed gain it.
pub(super) const POLICY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_layers (
  version BIGINT PRIMARY KEY,
  scope TEXT NOT NULL,
  document TEXT NOT NULL,
  author TEXT NOT NULL,
  reason TEXT,
  at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_layers_by_scope ON policy_layers (scope, version);
";

/// Created at every start (idempotent).
pub(super) const LIVE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent_states (
  device_id UUID PRIMARY KEY REFERENCES devices(id),
  reported_at BIGINT NOT NULL,
  agent_version TEXT NOT NULL,
  policy_version BIGINT NOT NULL,
  recording BOOLEAN NOT NULL,
  screen BOOLEAN NOT NULL,
  masked BOOLEAN NOT NULL,
  paused BOOLEAN NOT NULL,
  backlog_segments BIGINT NOT NULL,
  backlog_bytes BIGINT NOT NULL,
  last_refusal TEXT,
  last_refusal_at BIGINT
);
ALTER TABLE agent_states ADD COLUMN IF NOT EXISTS masked_seconds_today BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_states ADD COLUMN IF NOT EXISTS paused_seconds_today BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agent_states ADD COLUMN IF NOT EXISTS triggers_down TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS client_addr TEXT;
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS user_agent TEXT;
";

/// Created at every start (idempotent): device keys replaced by re-keying (`device_keys.rs`).
pub(super) const DEVICE_KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retired_device_keys (
  public_key BYTEA PRIMARY KEY,
  device_id UUID NOT NULL REFERENCES devices(id),
  key_id TEXT NOT NULL,
  retired_at BIGINT NOT NULL
);
";
