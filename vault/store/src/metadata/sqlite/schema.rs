//! The SQLite schema and the upgrades of databases made by earlier versions.

use rusqlite::{Connection, TransactionBehavior};

use crate::metadata::StoreError;

pub(super) const SCHEMA_VERSION: i64 = 2;

pub(in crate::metadata) const SCHEMA: &str = include_str!("../schema.sql");

/// Brings a database of any earlier layout up to date: every `CREATE … IF NOT EXISTS` of the
/// schema again (new tables appear), then the columns added to existing tables.
pub(super) fn migrate_access(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let added = [
        ("users", "teams", "ALTER TABLE users ADD COLUMN teams TEXT"),
        (
            "users",
            "disabled_at",
            "ALTER TABLE users ADD COLUMN disabled_at INTEGER",
        ),
        (
            "users",
            "totp_secret",
            "ALTER TABLE users ADD COLUMN totp_secret TEXT",
        ),
        (
            "users",
            "totp_last_step",
            "ALTER TABLE users ADD COLUMN totp_last_step INTEGER",
        ),
        (
            "audit_log",
            "client_addr",
            "ALTER TABLE audit_log ADD COLUMN client_addr TEXT",
        ),
        (
            "audit_log",
            "user_agent",
            "ALTER TABLE audit_log ADD COLUMN user_agent TEXT",
        ),
        (
            "recordings",
            "policy_version",
            "ALTER TABLE recordings ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 0",
        ),
    ];
    for (table, column, ddl) in added {
        let columns: Vec<String> = tx
            .prepare("SELECT name FROM pragma_table_info(?1)")?
            .query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if !columns.iter().any(|c| c == column) {
            tx.execute_batch(ddl)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Adds the version 2 columns of `segments` that are missing, and their indexes. Runs inside
/// the caller's transaction; safe to run again.
pub(super) fn upgrade_lifecycle(conn: &Connection) -> rusqlite::Result<()> {
    let existing: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('segments')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, ty) in ADDED_COLUMNS {
        if !existing.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE segments ADD COLUMN {name} {ty}"))?;
        }
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS segments_voice_due ON segments (voice_expires_at) \
           WHERE voice_deleted_at IS NULL; \
         CREATE INDEX IF NOT EXISTS segments_screen_due ON segments (screen_expires_at) \
           WHERE screen_deleted_at IS NULL; \
         CREATE INDEX IF NOT EXISTS segments_without_terms ON segments (segment_id) \
           WHERE policy_version IS NULL;",
    )
}

/// Creates the table, and adds the columns an older vault's table lacks.
pub(super) fn migrate_live(conn: &rusqlite::Connection) -> Result<(), StoreError> {
    conn.execute_batch(LIVE_SCHEMA)?;
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('agent_states')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (column, ddl) in ADDED {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(ddl)?;
        }
    }
    Ok(())
}

/// Created at every open (idempotent).
pub(super) const LIVE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS agent_states (
  device_id TEXT PRIMARY KEY REFERENCES devices(id),
  reported_at INTEGER NOT NULL,
  agent_version TEXT NOT NULL,
  policy_version INTEGER NOT NULL,
  recording INTEGER NOT NULL,
  screen INTEGER NOT NULL,
  masked INTEGER NOT NULL,
  paused INTEGER NOT NULL,
  backlog_segments INTEGER NOT NULL,
  backlog_bytes INTEGER NOT NULL,
  last_refusal TEXT,
  last_refusal_at INTEGER
);
";

/// Created at every open (idempotent): deployments made before policies existed gain it.
pub(super) const POLICY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_layers (
  version INTEGER PRIMARY KEY,
  scope TEXT NOT NULL,
  document TEXT NOT NULL,
  author TEXT NOT NULL,
  reason TEXT,
  at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_layers_by_scope ON policy_layers (scope, version);
CREATE TRIGGER IF NOT EXISTS policy_layers_no_update BEFORE UPDATE ON policy_layers
  BEGIN SELECT RAISE(ABORT, 'policy history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS policy_layers_no_delete BEFORE DELETE ON policy_layers
  BEGIN SELECT RAISE(ABORT, 'policy history is append-only'); END;
";

/// Columns added to `segments` in schema version 2.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    ("policy_version", "INTEGER"),
    ("ended_at", "INTEGER"),
    ("voice_expires_at", "INTEGER"),
    ("screen_expires_at", "INTEGER"),
    ("voice_deleted_at", "INTEGER"),
    ("voice_deleted_reason", "TEXT"),
    ("screen_deleted_at", "INTEGER"),
    ("screen_deleted_reason", "TEXT"),
];

/// Columns added after the table first shipped, with their DDL.
const ADDED: [(&str, &str); 3] = [
    (
        "masked_seconds_today",
        "ALTER TABLE agent_states ADD COLUMN masked_seconds_today INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "paused_seconds_today",
        "ALTER TABLE agent_states ADD COLUMN paused_seconds_today INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "triggers_down",
        "ALTER TABLE agent_states ADD COLUMN triggers_down TEXT NOT NULL DEFAULT ''",
    ),
];

/// Created at every open (idempotent). Device keys replaced by re-keying (`device_keys.rs`).
pub(super) const DEVICE_KEYS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS retired_device_keys (
  public_key BLOB PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id),
  key_id TEXT NOT NULL,
  retired_at INTEGER NOT NULL
);
";
