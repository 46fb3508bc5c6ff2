-- PostgreSQL metadata schema, version 1 (table vigil_schema). Same model as schema.sql.
CREATE TABLE IF NOT EXISTS vigil_schema (
  version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  must_change_password BOOLEAN NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  team TEXT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL,
  used_at BIGINT,
  used_by UUID
);
CREATE TABLE IF NOT EXISTS devices (
  id UUID PRIMARY KEY,
  public_key BYTEA NOT NULL UNIQUE CHECK (octet_length(public_key) = 32),
  key_id TEXT NOT NULL,
  hostname TEXT NOT NULL,
  os_user TEXT NOT NULL,
  team TEXT,
  enrolled_at BIGINT NOT NULL,
  revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS segments (
  session_id UUID NOT NULL,
  sequence BIGINT NOT NULL,
  segment_id UUID NOT NULL UNIQUE,
  device_id UUID NOT NULL REFERENCES devices(id),
  manifest_sha256 TEXT NOT NULL,
  prev_manifest_sha256 TEXT,
  last_in_session BOOLEAN NOT NULL,
  recorded_at BIGINT NOT NULL,
  received_at BIGINT NOT NULL,
  receipt BYTEA NOT NULL,
  PRIMARY KEY (session_id, sequence)
);
CREATE INDEX IF NOT EXISTS segments_by_device ON segments (device_id, recorded_at);
CREATE INDEX IF NOT EXISTS segments_by_time ON segments (recorded_at);
CREATE TABLE IF NOT EXISTS session_reports (
  session_id UUID PRIMARY KEY,
  device_id UUID NOT NULL REFERENCES devices(id),
  produced BIGINT NOT NULL,
  pending BIGINT[] NOT NULL,
  closed BOOLEAN NOT NULL,
  reported_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq BIGINT PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  reason TEXT,
  prev_sha256 TEXT NOT NULL,
  sha256 TEXT NOT NULL
);
-- The audit log is append-only: the database itself refuses edits, deletions and truncation.
CREATE OR REPLACE FUNCTION vigil_audit_log_append_only() RETURNS trigger
  LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only';
END
$$;
CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION vigil_audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION vigil_audit_log_append_only();
-- Version 2: retention, legal holds, redaction (store/lifecycle.rs). Re-run as a whole on a
-- version 1 database: every statement here is idempotent.
ALTER TABLE segments ADD COLUMN IF NOT EXISTS policy_version BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS ended_at BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS voice_expires_at BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS screen_expires_at BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS voice_deleted_at BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS voice_deleted_reason TEXT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS screen_deleted_at BIGINT;
ALTER TABLE segments ADD COLUMN IF NOT EXISTS screen_deleted_reason TEXT;
CREATE INDEX IF NOT EXISTS segments_voice_due ON segments (voice_expires_at)
  WHERE voice_deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS segments_screen_due ON segments (screen_expires_at)
  WHERE screen_deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS segments_without_terms ON segments (segment_id)
  WHERE policy_version IS NULL;
CREATE TABLE IF NOT EXISTS holds (
  id UUID PRIMARY KEY,
  case_name TEXT NOT NULL,
  created_by TEXT NOT NULL,
  reason TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  released_at BIGINT,
  released_by TEXT,
  release_reason TEXT
);
CREATE TABLE IF NOT EXISTS hold_scopes (
  hold_id UUID NOT NULL REFERENCES holds(id),
  position BIGINT NOT NULL,
  kind TEXT NOT NULL,
  target UUID,
  range_from BIGINT,
  range_to BIGINT,
  PRIMARY KEY (hold_id, position)
);
CREATE TABLE IF NOT EXISTS tombstones (
  segment_id UUID PRIMARY KEY REFERENCES segments(segment_id),
  session_id UUID NOT NULL,
  sequence BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  tombstone BYTEA NOT NULL,
  sha256 TEXT NOT NULL
);
-- Access control and recordings search (issue 5). Created by `PostgresStore::open` for existing
-- databases too, with the columns `users.teams` (JSON array text) and `users.disabled_at`.
ALTER TABLE users ADD COLUMN IF NOT EXISTS teams TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_at BIGINT;
-- Second factors (TOTP): the sealed secret and the time step of the last code accepted.
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_secret TEXT;
ALTER TABLE users ADD COLUMN IF NOT EXISTS totp_last_step BIGINT;
CREATE TABLE IF NOT EXISTS console_sessions (
  id_sha256 TEXT PRIMARY KEY,
  csrf_sha256 TEXT NOT NULL,
  user_name TEXT NOT NULL REFERENCES users(name),
  created_at BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_by_user ON console_sessions (user_name);
CREATE TABLE IF NOT EXISTS api_tokens (
  id UUID PRIMARY KEY,
  token_sha256 TEXT NOT NULL UNIQUE,
  user_name TEXT NOT NULL REFERENCES users(name),
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  revoked_at BIGINT
);
CREATE TABLE IF NOT EXISTS recordings (
  session_id UUID NOT NULL,
  sequence BIGINT NOT NULL,
  device_id UUID NOT NULL,
  agent TEXT NOT NULL,
  team TEXT,
  call_id TEXT,
  masked BOOLEAN NOT NULL,
  start_at BIGINT NOT NULL,
  end_at BIGINT NOT NULL,
  PRIMARY KEY (session_id, sequence),
  FOREIGN KEY (session_id, sequence) REFERENCES segments(session_id, sequence) ON DELETE CASCADE
);
-- The policy version a segment was recorded under (added after the table first shipped).
ALTER TABLE recordings ADD COLUMN IF NOT EXISTS policy_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS recordings_by_time ON recordings (start_at);
CREATE INDEX IF NOT EXISTS recordings_by_agent ON recordings (agent, start_at);
CREATE INDEX IF NOT EXISTS recordings_by_call ON recordings (call_id);
CREATE TABLE IF NOT EXISTS media_links (
  link_sha256 TEXT PRIMARY KEY,
  user_name TEXT NOT NULL,
  session_id UUID NOT NULL,
  sequence BIGINT NOT NULL,
  kind TEXT NOT NULL,
  disposition TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS login_failures (
  throttle_key TEXT PRIMARY KEY,
  failures BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  locked_until BIGINT
);
CREATE INDEX IF NOT EXISTS audit_log_by_actor ON audit_log (actor, seq);
CREATE INDEX IF NOT EXISTS audit_log_by_action ON audit_log (action, seq);
