//! [`LifecycleStore`] on SQLite, and the guarded upgrade of the `segments` table.

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;

use super::rows::{segment_row, set_terms, uuid_col, SEGMENT_COLUMNS};
use super::SqliteStore;
use crate::metadata::lifecycle::{
    scope_from_row, scope_to_row, Deletion, HoldRecord, HoldRelease, LifecycleStore, OverlapFilter,
    ReleaseOutcome, RetentionTerms, SegmentLifecycle, TombstoneRecord,
};
use crate::metadata::{SegmentRecord, StoreError};
use vigil_proto::MediaKind;

fn lifecycle_columns() -> String {
    format!(
        "{SEGMENT_COLUMNS}, policy_version, ended_at, voice_expires_at, screen_expires_at, \
         voice_deleted_at, voice_deleted_reason, screen_deleted_at, screen_deleted_reason"
    )
}

fn deletion(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Deletion>> {
    let when: Option<i64> = row.get(at)?;
    let reason: Option<String> = row.get(at + 1)?;
    Ok(when.map(|at| Deletion {
        at,
        reason: reason.unwrap_or_default(),
    }))
}

fn lifecycle_row(row: &Row<'_>) -> rusqlite::Result<SegmentLifecycle> {
    let segment = segment_row(row)?;
    let version: Option<i64> = row.get(10)?;
    let terms = match version {
        Some(policy_version) => Some(RetentionTerms {
            policy_version,
            ended_at: row
                .get::<_, Option<i64>>(11)?
                .unwrap_or(segment.recorded_at),
            voice_expires_at: row.get::<_, Option<i64>>(12)?.unwrap_or(i64::MAX),
            screen_expires_at: row.get::<_, Option<i64>>(13)?.unwrap_or(i64::MAX),
        }),
        None => None,
    };
    Ok(SegmentLifecycle {
        segment,
        terms,
        voice_deleted: deletion(row, 14)?,
        screen_deleted: deletion(row, 16)?,
    })
}

fn opt_uuid(text: Option<String>) -> Result<Option<Uuid>, StoreError> {
    text.map(|t| Uuid::parse_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn load_holds(
    conn: &Connection,
    where_clause: &str,
    arg: Option<String>,
) -> Result<Vec<HoldRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, case_name, created_by, reason, created_at, released_at, released_by, \
         release_reason FROM holds WHERE {where_clause} ORDER BY created_at, id"
    ))?;
    let mut holds = stmt
        .query_map(params![arg], |r| {
            let released_at: Option<i64> = r.get(5)?;
            Ok(HoldRecord {
                id: uuid_col(r, 0)?,
                case_name: r.get(1)?,
                created_by: r.get(2)?,
                reason: r.get(3)?,
                created_at: r.get(4)?,
                scopes: Vec::new(),
                released: match released_at {
                    Some(at) => Some(HoldRelease {
                        at,
                        by: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                        reason: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
                    }),
                    None => None,
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut scopes = conn.prepare_cached(
        "SELECT kind, target, range_from, range_to FROM hold_scopes WHERE hold_id = ?1 \
         ORDER BY position",
    )?;
    for hold in &mut holds {
        let rows = scopes
            .query_map(params![hold.id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (kind, target, from, to) in rows {
            hold.scopes
                .push(scope_from_row(&kind, opt_uuid(target)?, from, to)?);
        }
    }
    Ok(holds)
}

impl LifecycleStore for SqliteStore {
    fn insert_segment_with_terms(
        &self,
        s: &SegmentRecord,
        terms: &RetentionTerms,
    ) -> Result<(), StoreError> {
        // The terms ride the row's group commit: no transaction (nor fsync) of their own.
        let result = self.pending.enqueue(s.clone(), Some(*terms));
        self.pending.commit(&mut self.conn());
        result
            .recv()
            .map_err(|_| StoreError::CommitFailed("the committing thread panicked".into()))?
    }

    fn set_retention(&self, segment_id: Uuid, t: &RetentionTerms) -> Result<bool, StoreError> {
        Ok(set_terms(&self.conn(), segment_id, t)? > 0)
    }

    fn segment_lifecycle(&self, segment_id: Uuid) -> Result<Option<SegmentLifecycle>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {} FROM segments WHERE segment_id = ?1",
                    lifecycle_columns()
                ),
                params![segment_id.to_string()],
                lifecycle_row,
            )
            .optional()?)
    }

    fn segments_without_terms(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE policy_version IS NULL \
             AND (?1 IS NULL OR segment_id > ?1) ORDER BY segment_id LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![after.map(|a| a.to_string()), limit as i64],
            segment_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn segments_due(
        &self,
        now: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentLifecycle>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM segments WHERE \
             ((voice_expires_at <= ?1 AND voice_deleted_at IS NULL) \
              OR (screen_expires_at <= ?1 AND screen_deleted_at IS NULL)) \
             AND (?2 IS NULL OR segment_id > ?2) ORDER BY segment_id LIMIT ?3",
            lifecycle_columns()
        ))?;
        let rows = stmt.query_map(
            params![now, after.map(|a| a.to_string()), limit as i64],
            lifecycle_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn segments_overlapping(&self, f: &OverlapFilter) -> Result<Vec<SegmentLifecycle>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM segments \
             WHERE (?1 IS NULL OR session_id = ?1) AND (?2 IS NULL OR device_id = ?2) \
             AND recorded_at < ?4 AND (COALESCE(ended_at, recorded_at) > ?3 \
               OR recorded_at >= ?3) \
             ORDER BY session_id, sequence",
            lifecycle_columns()
        ))?;
        let rows = stmt.query_map(
            params![
                f.session.map(|s| s.to_string()),
                f.device.map(|d| d.to_string()),
                f.from,
                f.to
            ],
            lifecycle_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn mark_deleted(
        &self,
        segment_id: Uuid,
        kind: MediaKind,
        d: &Deletion,
    ) -> Result<bool, StoreError> {
        let k = kind.as_str();
        let changed = self.conn().execute(
            &format!(
                "UPDATE segments SET {k}_deleted_at = ?1, {k}_deleted_reason = ?2 \
                 WHERE segment_id = ?3 AND {k}_deleted_at IS NULL"
            ),
            params![d.at, d.reason, segment_id.to_string()],
        )?;
        Ok(changed > 0)
    }

    fn insert_hold(&self, hold: &HoldRecord) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO holds (id, case_name, created_by, reason, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                hold.id.to_string(),
                hold.case_name,
                hold.created_by,
                hold.reason,
                hold.created_at
            ],
        )?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO hold_scopes (hold_id, position, kind, target, range_from, range_to) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (i, scope) in hold.scopes.iter().enumerate() {
                let (kind, target, from, to) = scope_to_row(scope);
                insert.execute(params![
                    hold.id.to_string(),
                    i as i64,
                    kind,
                    target.map(|t| t.to_string()),
                    from,
                    to
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn holds(&self, include_released: bool) -> Result<Vec<HoldRecord>, StoreError> {
        let filter = if include_released {
            "?1 IS NULL"
        } else {
            "?1 IS NULL AND released_at IS NULL"
        };
        load_holds(&self.conn(), filter, None)
    }

    fn release_hold(&self, id: Uuid, r: &HoldRelease) -> Result<ReleaseOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found = load_holds(&tx, "id = ?1", Some(id.to_string()))?;
        let Some(mut hold) = found.into_iter().next() else {
            return Ok(ReleaseOutcome::Unknown);
        };
        if hold.released.is_some() {
            return Ok(ReleaseOutcome::AlreadyReleased(hold));
        }
        tx.execute(
            "UPDATE holds SET released_at = ?1, released_by = ?2, release_reason = ?3 \
             WHERE id = ?4 AND released_at IS NULL",
            params![r.at, r.by, r.reason, id.to_string()],
        )?;
        tx.commit()?;
        hold.released = Some(r.clone());
        Ok(ReleaseOutcome::Released(hold))
    }

    fn insert_tombstone(&self, t: &TombstoneRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO tombstones (segment_id, session_id, sequence, created_at, tombstone, \
             sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                t.segment_id.to_string(),
                t.session_id.to_string(),
                t.sequence,
                t.created_at,
                t.tombstone,
                t.sha256
            ],
        )?;
        Ok(())
    }

    fn tombstone(&self, segment_id: Uuid) -> Result<Option<TombstoneRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT segment_id, session_id, sequence, created_at, tombstone, sha256 \
                 FROM tombstones WHERE segment_id = ?1",
                params![segment_id.to_string()],
                |r| {
                    Ok(TombstoneRecord {
                        segment_id: uuid_col(r, 0)?,
                        session_id: uuid_col(r, 1)?,
                        sequence: r.get(2)?,
                        created_at: r.get(3)?,
                        tombstone: r.get(4)?,
                        sha256: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::conformance::lifecycle as conformance;
    use crate::metadata::lifecycle::LifecycleStore;
    use crate::metadata::{MetadataStore, SqliteStore};

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        (dir, store)
    }

    #[test]
    fn terms_and_deletions() {
        conformance::lifecycle_terms_and_deletions(&store().1);
    }

    #[test]
    fn holds_and_tombstones() {
        conformance::lifecycle_holds_and_tombstones(&store().1);
    }

    /// A version 1 database (before retention) upgrades in place: its rows stay, without
    /// terms (the sweeper fixes them), and the new tables work.
    #[test]
    fn version_1_databases_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let v1 = crate::metadata::sqlite::schema::SCHEMA
            .split("-- Version 2")
            .next()
            .unwrap()
            .to_owned();
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&format!("{v1} PRAGMA user_version = 1;"))
                .unwrap();
            conn.execute_batch(
                "INSERT INTO devices (id, public_key, key_id, hostname, user, enrolled_at) \
                 VALUES ('00000000-0000-0000-0000-000000000001', x'0101010101010101010101010101010101010101010101010101010101010101', 'k', 'h', 'u', 1); \
                 INSERT INTO segments (session_id, sequence, segment_id, device_id, manifest_sha256, \
                 last_in_session, recorded_at, received_at, receipt) VALUES \
                 ('00000000-0000-0000-0000-000000000002', 1, '00000000-0000-0000-0000-000000000003', \
                  '00000000-0000-0000-0000-000000000001', 'aa', 0, 10, 11, x'01');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = store.segments_without_terms(None, 10).unwrap();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].recorded_at, 10);
        assert!(store.holds(true).unwrap().is_empty());
        assert_eq!(store.session_sequences(None).unwrap().len(), 1);
        drop(store);
        // Opening again is a no-op.
        let store = SqliteStore::open(&path).unwrap();
        let version: i64 = store
            .conn()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
    }
}
