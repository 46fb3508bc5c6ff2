//! The outbox: one row per sealed segment in `<spool>/outbox.sqlite` (SQLite, WAL), with its
//! delivery state.
//!
//! ```text
//! sealed ──claim──▶ uploading ──receipt verified──▶ acknowledged (files deleted)
//!   ▲                   │
//!   └──── retry later ──┤ (network, 5xx: backoff with jitter)
//!                       └──refused (4xx)──▶ rejected (files kept, alarm raised)
//! ```
//! A row is written only after its segment's files are durable, so a row always has its
//! files. A crash in between leaves files without a row: [`Outbox::reconcile`] finds them at
//! the next start. Rows left `uploading` by a crash go back to `sealed`. The receipt is stored
//! before the files are deleted, so a crash in between only leaves files that reconcile deletes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

/// Why the outbox failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database failed (full disk, corruption, permissions).
    #[error("outbox database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored value does not parse back.
    #[error("outbox holds a malformed value: {0}")]
    Corrupt(String),
}

/// Where a segment is on its way to the vault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Sealed and spooled, waiting for (another) upload attempt.
    Sealed,
    /// An upload is in flight.
    Uploading,
    /// The vault's signed receipt verified; the local files are gone.
    Acknowledged,
    /// The vault refused it for good (4xx); the files are kept for IT.
    Rejected,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::Uploading => "uploading",
            Self::Acknowledged => "acknowledged",
            Self::Rejected => "rejected",
        }
    }

    fn parse(text: &str) -> Result<Self, OutboxError> {
        Ok(match text {
            "sealed" => Self::Sealed,
            "uploading" => Self::Uploading,
            "acknowledged" => Self::Acknowledged,
            "rejected" => Self::Rejected,
            other => return Err(OutboxError::Corrupt(format!("state {other:?}"))),
        })
    }
}

/// One segment's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Recording session.
    pub session_id: Uuid,
    /// Sequence number in the session.
    pub sequence: u64,
    /// Delivery state.
    pub state: DeliveryState,
    /// Sealed bytes on disk (blobs and manifest).
    pub bytes: u64,
    /// When it was sealed, Unix milliseconds.
    pub sealed_at_ms: i64,
    /// The segment closed its session.
    pub last_in_session: bool,
    /// Upload attempts so far.
    pub attempts: u32,
    /// The last failure, if any (never media or key material).
    pub last_error: Option<String>,
}

/// What waits for upload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogSummary {
    /// Segments not yet acknowledged (sealed, uploading or rejected).
    pub segments: u64,
    /// Their bytes on disk.
    pub bytes: u64,
    /// The oldest one's sealing time, Unix milliseconds.
    pub oldest_ms: Option<i64>,
    /// Segments the vault refused for good.
    pub rejected: u64,
    /// The last successful upload, Unix milliseconds.
    pub last_upload_ms: Option<i64>,
}

/// One session as the outbox knows it (for the heartbeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOutbox {
    /// Highest sequence number sealed.
    pub produced: u64,
    /// Sealed but not acknowledged, ascending.
    pub pending: Vec<u64>,
    /// The session's last segment was sealed.
    pub closed: bool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox (
  session_id TEXT NOT NULL,
  sequence INTEGER NOT NULL,
  state TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sealed_at_ms INTEGER NOT NULL,
  last_in_session INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  acknowledged_at_ms INTEGER,
  receipt BLOB,
  PRIMARY KEY (session_id, sequence)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_ms);
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The outbox database; cheap to clone (one shared connection).
#[derive(Clone)]
pub struct Outbox {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Outbox")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn entry_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxEntry, String)> {
    let session: String = row.get(0)?;
    let state: String = row.get(2)?;
    Ok((
        OutboxEntry {
            session_id: Uuid::parse_str(&session).unwrap_or_default(),
            sequence: row.get::<_, i64>(1)? as u64,
            state: DeliveryState::Sealed,
            bytes: row.get::<_, i64>(3)? as u64,
            sealed_at_ms: row.get(4)?,
            last_in_session: row.get(5)?,
            attempts: row.get::<_, i64>(6)? as u32,
            last_error: row.get(7)?,
        },
        state,
    ))
}

const ENTRY_COLUMNS: &str =
    "session_id, sequence, state, bytes, sealed_at_ms, last_in_session, attempts, last_error";

impl Outbox {
    /// Opens (creating if needed) the outbox at `path`. Rows left `uploading` by a previous
    /// process go back to `sealed`: their uploads died with it.
    pub fn open(path: &Path) -> Result<Self, OutboxError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a row the vault may later acknowledge must survive power loss like its files.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "UPDATE outbox SET state = 'sealed' WHERE state = 'uploading'",
            [],
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // SQLite rolls back a transaction cut by a panic, so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a segment whose files are durable. Recording the same segment twice is a no-op.
    pub fn record_sealed(
        &self,
        session: Uuid,
        sequence: u64,
        bytes: u64,
        last_in_session: bool,
        sealed_at_ms: i64,
    ) -> Result<(), OutboxError> {
        self.conn().execute(
            "INSERT INTO outbox (session_id, sequence, state, bytes, sealed_at_ms, \
             last_in_session) VALUES (?1, ?2, 'sealed', ?3, ?4, ?5) \
             ON CONFLICT (session_id, sequence) DO NOTHING",
            params![
                session.to_string(),
                sequence as i64,
                bytes as i64,
                sealed_at_ms,
                last_in_session
            ],
        )?;
        Ok(())
    }

    /// The row of a segment.
    pub fn entry(&self, session: Uuid, sequence: u64) -> Result<Option<OutboxEntry>, OutboxError> {
        let found = self
            .conn()
            .query_row(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM outbox WHERE session_id = ?1 AND sequence = ?2"
                ),
                params![session.to_string(), sequence as i64],
                entry_row,
            )
            .optional()?;
        found
            .map(|(mut e, state)| {
                e.state = DeliveryState::parse(&state)?;
                Ok(e)
            })
            .transpose()
    }

    /// Every row in a state, oldest first.
    pub fn entries(&self, state: DeliveryState) -> Result<Vec<OutboxEntry>, OutboxError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ENTRY_COLUMNS} FROM outbox WHERE state = ?1 ORDER BY sealed_at_ms, \
             session_id, sequence"
        ))?;
        let rows = stmt.query_map(params![state.as_str()], entry_row)?;
        rows.map(|r| {
            let (mut e, _) = r?;
            e.state = state;
            Ok(e)
        })
        .collect()
    }

    /// Claims up to `limit` segments that are due (oldest first) and marks them `uploading`.
    pub fn claim_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxEntry>, OutboxError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let claimed = {
            let mut stmt = tx.prepare(&format!(
                "SELECT {ENTRY_COLUMNS} FROM outbox WHERE state = 'sealed' AND \
                 next_attempt_ms <= ?1 ORDER BY sealed_at_ms, session_id, sequence LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now_ms, limit as i64], entry_row)?;
            rows.map(|r| r.map(|(e, _)| e))
                .collect::<Result<Vec<_>, _>>()?
        };
        for e in &claimed {
            tx.execute(
                "UPDATE outbox SET state = 'uploading', attempts = attempts + 1 \
                 WHERE session_id = ?1 AND sequence = ?2",
                params![e.session_id.to_string(), e.sequence as i64],
            )?;
        }
        tx.commit()?;
        Ok(claimed
            .into_iter()
            .map(|e| OutboxEntry {
                state: DeliveryState::Uploading,
                attempts: e.attempts + 1,
                ..e
            })
            .collect())
    }

    /// When the next sealed segment becomes due, if any waits.
    pub fn next_due_ms(&self) -> Result<Option<i64>, OutboxError> {
        Ok(self.conn().query_row(
            "SELECT MIN(next_attempt_ms) FROM outbox WHERE state = 'sealed'",
            [],
            |r| r.get(0),
        )?)
    }

    /// The upload failed in a way worth retrying: back to `sealed`, due after `delay`.
    pub fn retry_later(
        &self,
        session: Uuid,
        sequence: u64,
        error: &str,
        due_ms: i64,
    ) -> Result<(), OutboxError> {
        self.set_state(session, sequence, "sealed", Some(error), Some(due_ms))
    }

    /// The vault refused the segment for good.
    pub fn reject(&self, session: Uuid, sequence: u64, error: &str) -> Result<(), OutboxError> {
        self.set_state(session, sequence, "rejected", Some(error), None)
    }

    /// Puts refused segments back in the queue (after IT fixed the cause, e.g. re-enrolled).
    pub fn requeue_rejected(&self) -> Result<usize, OutboxError> {
        Ok(self.conn().execute(
            "UPDATE outbox SET state = 'sealed', next_attempt_ms = 0 WHERE state = 'rejected'",
            [],
        )?)
    }

    fn set_state(
        &self,
        session: Uuid,
        sequence: u64,
        state: &str,
        error: Option<&str>,
        due_ms: Option<i64>,
    ) -> Result<(), OutboxError> {
        self.conn().execute(
            "UPDATE outbox SET state = ?1, last_error = ?2, \
             next_attempt_ms = COALESCE(?3, next_attempt_ms) \
             WHERE session_id = ?4 AND sequence = ?5",
            params![state, error, due_ms, session.to_string(), sequence as i64],
        )?;
        Ok(())
    }

    /// The vault's receipt verified: stores it and marks the segment acknowledged. The caller
    /// deletes the files afterwards.
    pub fn acknowledge(
        &self,
        session: Uuid,
        sequence: u64,
        receipt: &[u8],
        at_ms: i64,
    ) -> Result<(), OutboxError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE outbox SET state = 'acknowledged', receipt = ?1, acknowledged_at_ms = ?2, \
             last_error = NULL WHERE session_id = ?3 AND sequence = ?4",
            params![receipt, at_ms, session.to_string(), sequence as i64],
        )?;
        tx.execute(
            "INSERT INTO outbox_meta (key, value) VALUES ('last_upload_ms', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, ?1)",
            params![at_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The stored receipt of an acknowledged segment.
    pub fn receipt(&self, session: Uuid, sequence: u64) -> Result<Option<Vec<u8>>, OutboxError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT receipt FROM outbox WHERE session_id = ?1 AND sequence = ?2",
                params![session.to_string(), sequence as i64],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Counts, bytes and age of what has not been acknowledged.
    pub fn backlog(&self) -> Result<BacklogSummary, OutboxError> {
        let conn = self.conn();
        let (segments, bytes, oldest_ms, rejected): (i64, i64, Option<i64>, i64) = conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(sealed_at_ms), \
                 COALESCE(SUM(state = 'rejected'), 0) FROM outbox WHERE state <> 'acknowledged'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )?;
        let last_upload_ms = conn
            .query_row(
                "SELECT value FROM outbox_meta WHERE key = 'last_upload_ms'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(BacklogSummary {
            segments: segments as u64,
            bytes: bytes as u64,
            oldest_ms,
            rejected: rejected as u64,
            last_upload_ms,
        })
    }

    /// Per session sealed since `since_ms` or still pending: what was produced and what is in
    /// transit (the heartbeat's content).
    pub fn sessions(&self, since_ms: i64) -> Result<BTreeMap<Uuid, SessionOutbox>, OutboxError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT session_id, sequence, state, last_in_session FROM outbox WHERE session_id IN \
             (SELECT session_id FROM outbox WHERE sealed_at_ms >= ?1 OR state <> 'acknowledged') \
             ORDER BY session_id, sequence",
        )?;
        let rows = stmt.query_map(params![since_ms], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?;
        let mut out: BTreeMap<Uuid, SessionOutbox> = BTreeMap::new();
        for row in rows {
            let (session, sequence, state, last) = row?;
            let session =
                Uuid::parse_str(&session).map_err(|e| OutboxError::Corrupt(e.to_string()))?;
            let entry = out.entry(session).or_default();
            entry.produced = entry.produced.max(sequence as u64);
            if state != "acknowledged" {
                entry.pending.push(sequence as u64);
            }
            entry.closed |= last;
        }
        Ok(out)
    }

    /// Forgets acknowledged rows older than `before_ms` (their files are long gone).
    pub fn prune_acknowledged(&self, before_ms: i64) -> Result<usize, OutboxError> {
        Ok(self.conn().execute(
            "DELETE FROM outbox WHERE state = 'acknowledged' AND acknowledged_at_ms < ?1",
            params![before_ms],
        )?)
    }
}
