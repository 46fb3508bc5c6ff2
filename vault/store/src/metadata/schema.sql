-- Metadata schema, version 1 (PRAGMA user_version).
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  must_change_password INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  team TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  used_by TEXT
);
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  public_key BLOB NOT NULL UNIQUE,
  key_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  user TEXT NOT NULL,
  team TEXT,
  enrolled_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS segments (
  session_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  segment_id TEXT NOT NULL UNIQUE,
  device_id TEXT NOT NULL REFERENCES devices(id),
  manifest_sha256 TEXT NOT NULL,
  prev_manifest_sha256 TEXT,
  last_in_session INTEGER NOT NULL,
  recorded_at INTEGER NOT NULL,
  received_at INTEGER NOT NULL,
  receipt BLOB NOT NULL,
  PRIMARY KEY (session_id, sequence)
);
CREATE INDEX IF NOT EXISTS segments_by_device ON segments (device_id, recorded_at);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (recorded_at);
CREATE TABLE IF NOT EXISTS session_reports (
  session_id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL REFERENCES devices(id),
  produced INTEGER NOT NULL,
  pending TEXT NOT NULL,
  closed INTEGER NOT NULL,
  reported_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  reason TEXT,
  prev_sha256 TEXT NOT NULL,
  sha256 TEXT NOT NULL
);
-- The audit log is append-only: the database itself refuses edits and deletions.
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
-- Version 2: retention, legal holds, redaction (store/lifecycle.rs). The new columns of
-- `segments` (policy_version, ended_at, voice/screen_expires_at, voice/screen_deleted_at and
-- _reason) are added by sqlite/lifecycle.rs, guarded, so a version 1 database upgrades.
CREATE TABLE IF NOT EXISTS holds (
  id TEXT PRIMARY KEY,
  case_name TEXT NOT NULL,
  created_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  released_at INTEGER,
  released_by TEXT,
  release_reason TEXT
);
CREATE TABLE IF NOT EXISTS hold_scopes (
  hold_id TEXT NOT NULL REFERENCES holds(id),
  position INTEGER NOT NULL,
  kind TEXT NOT NULL,
  target TEXT,
  range_from INTEGER,
  range_to INTEGER,
  PRIMARY KEY (hold_id, position)
);
CREATE TABLE IF NOT EXISTS tombstones (
  segment_id TEXT PRIMARY KEY REFERENCES segments(segment_id),
  session_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  tombstone BLOB NOT NULL,
  sha256 TEXT NOT NULL
);
-- Access control and recordings search (issue 5). Created by `SqliteStore::open` for existing
-- databases too; the columns `users.teams` (JSON array) and `users.disabled_at` are added there.
CREATE TABLE IF NOT EXISTS console_sessions (
  id_sha256 TEXT PRIMARY KEY,
  csrf_sha256 TEXT NOT NULL,
  user_name TEXT NOT NULL REFERENCES users(name),
  created_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_by_user ON console_sessions (user_name);
CREATE TABLE IF NOT EXISTS api_tokens (
  id TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL UNIQUE,
  user_name TEXT NOT NULL REFERENCES users(name),
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);
CREATE TABLE IF NOT EXISTS recordings (
  session_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  device_id TEXT NOT NULL,
  agent TEXT NOT NULL,
  team TEXT,
  call_id TEXT,
  masked INTEGER NOT NULL,
  start_at INTEGER NOT NULL,
  end_at INTEGER NOT NULL,
  policy_version INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (session_id, sequence),
  FOREIGN KEY (session_id, sequence) REFERENCES segments(session_id, sequence) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS recordings_by_time ON recordings (start_at);
CREATE INDEX IF NOT EXISTS recordings_by_agent ON recordings (agent, start_at);
CREATE INDEX IF NOT EXISTS recordings_by_call ON recordings (call_id);
CREATE TABLE IF NOT EXISTS media_links (
  link_sha256 TEXT PRIMARY KEY,
  user_name TEXT NOT NULL,
  session_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  kind TEXT NOT NULL,
  disposition TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
  throttle_key TEXT PRIMARY KEY,
  failures INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  locked_until INTEGER
);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, seq);
