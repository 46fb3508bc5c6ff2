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
  received_at INTEGER NOT NULL,
  receipt BLOB NOT NULL,
  PRIMARY KEY (session_id, sequence)
);
