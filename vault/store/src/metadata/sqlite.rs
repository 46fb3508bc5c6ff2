//! The embedded metadata store: one SQLite file in WAL mode.
//!
//! Built for concurrent ingest: the hot reads of an upload (device by key, segments by position
//! or id) go to a small pool of read connections (statements cached), which WAL lets run
//! beside the writer, and
//! segment rows are inserted by group commit (`group_commit.rs`): an insert that arrives while
//! another commits waits, then the next one to take the writer commits every waiting row in
//! one transaction, so one fsync (synchronous=FULL) covers many segments.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

mod access;
mod device_keys;
mod group_commit;
mod live;
mod policy;
mod rows;
pub(super) mod schema;

use group_commit::GroupCommit;
use rows::{device_row, segment_row, uuid_col, DEVICE_COLUMNS, SEGMENT_COLUMNS};
use schema::{SCHEMA, SCHEMA_VERSION};

mod lifecycle;
use super::{
    AuditDraft, AuditRecord, DeviceRecord, EnrollOutcome, MetadataStore, SegmentFilter,
    SegmentRecord, SessionReport, SessionSequences, StoreError, TokenRecord, UserRecord,
};

/// Metadata in one SQLite file. Safe to open from several processes at once (the CLI's
/// `token create` while the server runs): SQLite serializes writers.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Segment rows waiting for the next group commit.
    pending: GroupCommit,
}

/// Read connections beside the writer.
const READERS: usize = 4;

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (and creates or migrates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            // Every statement of the schema is idempotent, so an older database runs it again;
            // the columns added since version 1 are added (guarded) by `lifecycle::upgrade`.
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let upgraded = conn
                .execute_batch(SCHEMA)
                .and_then(|()| schema::upgrade_lifecycle(&conn))
                .and_then(|()| {
                    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                    conn.execute_batch("COMMIT")
                });
            if let Err(e) = upgraded {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e.into());
            }
        }
        conn.execute_batch(schema::POLICY_SCHEMA)?;
        conn.execute_batch(schema::DEVICE_KEYS_SCHEMA)?;
        schema::migrate_live(&conn)?;
        schema::migrate_access(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path)?;
                reader.busy_timeout(Duration::from_secs(10))?;
                Ok(Mutex::new(reader))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self {
            conn: Mutex::new(conn),
            readers,
            next_reader: AtomicUsize::new(0),
            pending: GroupCommit::default(),
        })
    }

    /// A free read connection if there is one, else the next in turn.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let n = self.readers.len();
        for i in 0..n {
            if let Ok(guard) = self.readers[(start + i) % n].try_lock() {
                return guard;
            }
        }
        self.readers[start % n]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions roll
        // back), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MetadataStore for SqliteStore {
    fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO users (name, role, password_hash, must_change_password, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                user.name,
                user.role,
                user.password_hash,
                user.must_change_password,
                time::OffsetDateTime::now_utc().unix_timestamp()
            ],
        )?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, role, password_hash, must_change_password FROM users WHERE name = ?1",
                params![name],
                |r| {
                    Ok(UserRecord {
                        name: r.get(0)?,
                        role: r.get(1)?,
                        password_hash: r.get(2)?,
                        must_change_password: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO enrollment_tokens (token_sha256, team, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![
                token.token_sha256,
                token.team,
                token.created_at,
                token.expires_at
            ],
        )?;
        Ok(())
    }

    fn enroll(
        &self,
        token_sha256: &str,
        now: i64,
        device: &DeviceRecord,
    ) -> Result<EnrollOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let token: Option<(Option<String>, i64, Option<i64>)> = tx
            .query_row(
                "SELECT team, expires_at, used_at FROM enrollment_tokens WHERE token_sha256 = ?1",
                params![token_sha256],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let team = match token {
            None => return Ok(EnrollOutcome::UnknownToken),
            Some((_, _, Some(_))) => return Ok(EnrollOutcome::TokenUsed),
            Some((_, expires_at, None)) if now >= expires_at => {
                return Ok(EnrollOutcome::TokenExpired)
            }
            Some((team, _, None)) => team,
        };
        let existing = tx
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE public_key = ?1"),
                params![device.public_key.as_slice()],
                device_row,
            )
            .optional()?;
        let outcome = match existing {
            Some(d) if d.revoked_at.is_some() => return Ok(EnrollOutcome::KeyRevoked),
            Some(d) => EnrollOutcome::AlreadyEnrolled(d),
            None => {
                let device = DeviceRecord {
                    team,
                    ..device.clone()
                };
                tx.execute(
                    "INSERT INTO devices (id, public_key, key_id, hostname, user, team, \
                     enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        device.id.to_string(),
                        device.public_key.as_slice(),
                        device.key_id,
                        device.hostname,
                        device.user,
                        device.team,
                        device.enrolled_at
                    ],
                )?;
                EnrollOutcome::Enrolled(device)
            }
        };
        let device_id = match &outcome {
            EnrollOutcome::Enrolled(d) | EnrollOutcome::AlreadyEnrolled(d) => d.id.to_string(),
            _ => unreachable!("only enrollments reach this point"),
        };
        tx.execute(
            "UPDATE enrollment_tokens SET used_at = ?1, used_by = ?2 WHERE token_sha256 = ?3",
            params![now, device_id, token_sha256],
        )?;
        tx.commit()?;
        Ok(outcome)
    }

    fn device_by_key(&self, public_key: &[u8; 32]) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE public_key = ?1"
            ))?
            .query_row(params![public_key.as_slice()], device_row)
            .optional()?)
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id"
        ))?;
        let rows = stmt.query_map([], device_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn revoke_device(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
            params![id.to_string()],
            |r| r.get(0),
        )?;
        if exists {
            conn.execute(
                "UPDATE devices SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
                params![now, id.to_string()],
            )?;
        }
        Ok(exists)
    }

    fn segment(&self, session: Uuid, sequence: i64) -> Result<Option<SegmentRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE session_id = ?1 AND sequence = ?2"
            ))?
            .query_row(params![session.to_string(), sequence], segment_row)
            .optional()?)
    }

    fn segment_by_id(&self, segment_id: Uuid) -> Result<Option<SegmentRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = ?1"
            ))?
            .query_row(params![segment_id.to_string()], segment_row)
            .optional()?)
    }

    fn session_device(&self, session: Uuid) -> Result<Option<Uuid>, StoreError> {
        let id: Option<String> = self
            .reader()
            .prepare_cached("SELECT device_id FROM segments WHERE session_id = ?1 LIMIT 1")?
            .query_row(params![session.to_string()], |r| r.get(0))
            .optional()?;
        id.map(|s| Uuid::parse_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    }

    fn insert_segment(&self, s: &SegmentRecord) -> Result<(), StoreError> {
        let result = self.pending.enqueue(s.clone(), None);
        // Whoever holds the writer next commits this row with every other waiting one.
        self.pending.commit(&mut self.conn());
        result
            .recv()
            .map_err(|_| StoreError::CommitFailed("the committing thread panicked".into()))?
    }

    fn session_sequences(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionSequences>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT session_id, sequence, last_in_session FROM segments \
             WHERE ?1 IS NULL OR session_id = ?1 ORDER BY session_id, sequence",
        )?;
        let rows = stmt.query_map(params![session.map(|s| s.to_string())], |r| {
            Ok((uuid_col(r, 0)?, r.get::<_, i64>(1)?, r.get::<_, bool>(2)?))
        })?;
        let mut out: BTreeMap<Uuid, SessionSequences> = BTreeMap::new();
        for row in rows {
            let (session, sequence, last) = row?;
            let entry = out.entry(session).or_default();
            entry.sequences.push(sequence);
            entry.closed |= last;
        }
        Ok(out)
    }

    fn segments(&self, f: &SegmentFilter) -> Result<Vec<SegmentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments \
             WHERE (?1 IS NULL OR session_id = ?1) AND (?2 IS NULL OR device_id = ?2) \
             AND (?3 IS NULL OR recorded_at >= ?3) AND (?4 IS NULL OR recorded_at < ?4) \
             ORDER BY session_id, sequence"
        ))?;
        let rows = stmt.query_map(
            params![
                f.session.map(|s| s.to_string()),
                f.device.map(|d| d.to_string()),
                f.from,
                f.to
            ],
            segment_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn put_session_report(&self, r: &SessionReport) -> Result<(), StoreError> {
        let pending =
            serde_json::to_string(&r.pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.conn().execute(
            "INSERT INTO session_reports (session_id, device_id, produced, pending, closed, \
             reported_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (session_id) DO UPDATE \
             SET device_id = ?2, produced = ?3, pending = ?4, closed = ?5, reported_at = ?6",
            params![
                r.session_id.to_string(),
                r.device_id.to_string(),
                r.produced,
                pending,
                r.closed,
                r.reported_at
            ],
        )?;
        Ok(())
    }

    fn session_reports(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionReport>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT session_id, device_id, produced, pending, closed, reported_at \
             FROM session_reports WHERE ?1 IS NULL OR session_id = ?1",
        )?;
        let rows = stmt.query_map(params![session.map(|s| s.to_string())], |r| {
            let pending: String = r.get(3)?;
            Ok((
                SessionReport {
                    session_id: uuid_col(r, 0)?,
                    device_id: uuid_col(r, 1)?,
                    produced: r.get(2)?,
                    pending: Vec::new(),
                    closed: r.get(4)?,
                    reported_at: r.get(5)?,
                },
                pending,
            ))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (mut report, pending) = row?;
            report.pending =
                serde_json::from_str(&pending).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            out.insert(report.session_id, report);
        }
        Ok(out)
    }

    fn append_audit(&self, draft: &AuditDraft) -> Result<AuditRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .query_row(
                "SELECT seq, sha256 FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (seq, prev) = match last {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, AuditRecord::GENESIS.to_owned()),
        };
        let sha256 = AuditRecord::chain_hash(seq, &prev, draft);
        tx.execute(
            "INSERT INTO audit_log (seq, at, actor, action, target, reason, prev_sha256, sha256, \
             client_addr, user_agent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                seq,
                draft.at,
                draft.actor,
                draft.action,
                draft.target,
                draft.reason,
                prev,
                sha256,
                draft.client_addr,
                draft.user_agent
            ],
        )?;
        tx.commit()?;
        Ok(AuditRecord {
            seq,
            draft: draft.clone(),
            prev_sha256: prev,
            sha256,
        })
    }

    fn audit_records(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, action, target, reason, prev_sha256, sha256, client_addr, \
             user_agent FROM audit_log \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                draft: AuditDraft {
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    reason: r.get(5)?,
                    client_addr: r.get(8)?,
                    user_agent: r.get(9)?,
                },
                prev_sha256: r.get(6)?,
                sha256: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.conn()
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SqliteStore;
    use crate::conformance;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn tokens_are_single_use_and_expire() {
        conformance::tokens_are_single_use_and_expire(&store().1);
    }

    #[test]
    fn segments_round_trip() {
        conformance::segments_round_trip(&store().1);
    }

    #[test]
    fn segments_are_listed_by_filter() {
        conformance::segments_are_listed_by_filter(&store().1);
    }

    #[test]
    fn concurrent_inserts_commit_independently() {
        conformance::concurrent_inserts_commit_independently(&store().1);
    }

    #[test]
    fn session_reports_replace_each_other() {
        conformance::session_reports_replace_each_other(&store().1);
    }

    #[test]
    fn audit_log_is_chained_and_append_only() {
        let (_dir, store) = store();
        conformance::audit_log_is_chained(&store);
        let conn = store.conn();
        assert!(conn.execute("DELETE FROM audit_log", []).is_err());
        assert!(conn
            .execute("UPDATE audit_log SET actor = 'x' WHERE seq = 1", [])
            .is_err());
    }

    #[test]
    fn access_conformance() {
        conformance::access::accounts_sessions_and_tokens(&store().1);
        conformance::access::recordings_are_searched(&store().1);
        conformance::access::audit_is_queried(&store().1);
        conformance::access::media_links_expire(&store().1);
        conformance::access::login_failures_count_and_lock(&store().1);
    }

    #[test]
    fn devices_are_rekeyed() {
        conformance::devices_are_rekeyed(&store().1);
    }

    #[test]
    fn reopening_keeps_the_schema() {
        let (dir, first) = store();
        drop(first);
        SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
    }
}
