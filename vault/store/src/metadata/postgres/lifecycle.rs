//! [`LifecycleStore`] on PostgreSQL (the columns and tables come from `schema_pg.sql`).

use postgres::{GenericClient, Row};
use uuid::Uuid;

use super::rows::{segment_row, SEGMENT_COLUMNS};
use super::PostgresStore;
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

fn deletion(row: &Row, at: usize) -> Result<Option<Deletion>, StoreError> {
    let when: Option<i64> = row.try_get(at)?;
    let reason: Option<String> = row.try_get(at + 1)?;
    Ok(when.map(|at| Deletion {
        at,
        reason: reason.unwrap_or_default(),
    }))
}

fn lifecycle_row(row: &Row) -> Result<SegmentLifecycle, StoreError> {
    let segment = segment_row(row)?;
    let version: Option<i64> = row.try_get(10)?;
    let terms = match version {
        Some(policy_version) => Some(RetentionTerms {
            policy_version,
            ended_at: row
                .try_get::<_, Option<i64>>(11)?
                .unwrap_or(segment.recorded_at),
            voice_expires_at: row.try_get::<_, Option<i64>>(12)?.unwrap_or(i64::MAX),
            screen_expires_at: row.try_get::<_, Option<i64>>(13)?.unwrap_or(i64::MAX),
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

fn load_holds(
    c: &mut impl GenericClient,
    where_clause: &str,
    id: Option<Uuid>,
) -> Result<Vec<HoldRecord>, StoreError> {
    let rows = c.query(
        &format!(
            "SELECT id, case_name, created_by, reason, created_at, released_at, released_by, \
             release_reason FROM holds WHERE {where_clause} ORDER BY created_at, id"
        ),
        &[&id],
    )?;
    let mut holds = Vec::with_capacity(rows.len());
    for r in rows {
        let released_at: Option<i64> = r.try_get(5)?;
        let id: Uuid = r.try_get(0)?;
        let mut scopes = Vec::new();
        for s in c.query(
            "SELECT kind, target, range_from, range_to FROM hold_scopes WHERE hold_id = $1 \
             ORDER BY position",
            &[&id],
        )? {
            let kind: String = s.try_get(0)?;
            scopes.push(scope_from_row(
                &kind,
                s.try_get(1)?,
                s.try_get(2)?,
                s.try_get(3)?,
            )?);
        }
        holds.push(HoldRecord {
            id,
            case_name: r.try_get(1)?,
            created_by: r.try_get(2)?,
            reason: r.try_get(3)?,
            created_at: r.try_get(4)?,
            scopes,
            released: match released_at {
                Some(at) => Some(HoldRelease {
                    at,
                    by: r.try_get::<_, Option<String>>(6)?.unwrap_or_default(),
                    reason: r.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
                }),
                None => None,
            },
        });
    }
    Ok(holds)
}

fn lifecycles(rows: Vec<Row>) -> Result<Vec<SegmentLifecycle>, StoreError> {
    rows.iter().map(lifecycle_row).collect()
}

impl LifecycleStore for PostgresStore {
    fn insert_segment_with_terms(
        &self,
        s: &SegmentRecord,
        t: &RetentionTerms,
    ) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO segments ({SEGMENT_COLUMNS}, policy_version, ended_at, \
                     voice_expires_at, screen_expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ),
                &[
                    &s.segment_id,
                    &s.session_id,
                    &s.sequence,
                    &s.device_id,
                    &s.manifest_sha256,
                    &s.prev_manifest_sha256,
                    &s.last_in_session,
                    &s.recorded_at,
                    &s.received_at,
                    &s.receipt,
                    &t.policy_version,
                    &t.ended_at,
                    &t.voice_expires_at,
                    &t.screen_expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn set_retention(&self, segment_id: Uuid, t: &RetentionTerms) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let changed = c.execute(
                "UPDATE segments SET policy_version = $1, ended_at = $2, voice_expires_at = $3, \
                 screen_expires_at = $4 WHERE segment_id = $5 AND policy_version IS NULL",
                &[
                    &t.policy_version,
                    &t.ended_at,
                    &t.voice_expires_at,
                    &t.screen_expires_at,
                    &segment_id,
                ],
            )?;
            Ok(changed > 0)
        })
    }

    fn segment_lifecycle(&self, segment_id: Uuid) -> Result<Option<SegmentLifecycle>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!(
                    "SELECT {} FROM segments WHERE segment_id = $1",
                    lifecycle_columns()
                ),
                &[&segment_id],
            )?
            .map(|r| lifecycle_row(&r))
            .transpose()
        })
    }

    fn segments_without_terms(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE policy_version IS NULL \
                     AND ($1::uuid IS NULL OR segment_id > $1) ORDER BY segment_id LIMIT $2"
                ),
                &[&after, &limit],
            )?;
            rows.iter().map(segment_row).collect()
        })
    }

    fn segments_due(
        &self,
        now: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentLifecycle>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {} FROM segments WHERE \
                     ((voice_expires_at <= $1 AND voice_deleted_at IS NULL) \
                      OR (screen_expires_at <= $1 AND screen_deleted_at IS NULL)) \
                     AND ($2::uuid IS NULL OR segment_id > $2) ORDER BY segment_id LIMIT $3",
                    lifecycle_columns()
                ),
                &[&now, &after, &limit],
            )?;
            lifecycles(rows)
        })
    }

    fn segments_overlapping(&self, f: &OverlapFilter) -> Result<Vec<SegmentLifecycle>, StoreError> {
        self.with_client(|c| {
            let rows = c.query(
                &format!(
                    "SELECT {} FROM segments \
                     WHERE ($1::uuid IS NULL OR session_id = $1) \
                     AND ($2::uuid IS NULL OR device_id = $2) \
                     AND recorded_at < $4 AND (COALESCE(ended_at, recorded_at) > $3 \
                       OR recorded_at >= $3) \
                     ORDER BY session_id, sequence",
                    lifecycle_columns()
                ),
                &[&f.session, &f.device, &f.from, &f.to],
            )?;
            lifecycles(rows)
        })
    }

    fn mark_deleted(
        &self,
        segment_id: Uuid,
        kind: MediaKind,
        d: &Deletion,
    ) -> Result<bool, StoreError> {
        let k = kind.as_str();
        self.with_client(|c| {
            let changed = c.execute(
                &format!(
                    "UPDATE segments SET {k}_deleted_at = $1, {k}_deleted_reason = $2 \
                     WHERE segment_id = $3 AND {k}_deleted_at IS NULL"
                ),
                &[&d.at, &d.reason, &segment_id],
            )?;
            Ok(changed > 0)
        })
    }

    fn insert_hold(&self, hold: &HoldRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.execute(
                "INSERT INTO holds (id, case_name, created_by, reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &hold.id,
                    &hold.case_name,
                    &hold.created_by,
                    &hold.reason,
                    &hold.created_at,
                ],
            )?;
            let insert = tx.prepare(
                "INSERT INTO hold_scopes (hold_id, position, kind, target, range_from, range_to) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )?;
            for (i, scope) in hold.scopes.iter().enumerate() {
                let (kind, target, from, to) = scope_to_row(scope);
                tx.execute(
                    &insert,
                    &[&hold.id, &(i as i64), &kind, &target, &from, &to],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn holds(&self, include_released: bool) -> Result<Vec<HoldRecord>, StoreError> {
        let filter = if include_released {
            "$1::uuid IS NULL"
        } else {
            "$1::uuid IS NULL AND released_at IS NULL"
        };
        self.with_client(|c| load_holds(c, filter, None))
    }

    fn release_hold(&self, id: Uuid, r: &HoldRelease) -> Result<ReleaseOutcome, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // FOR UPDATE: two releases at once keep the first one's time and reason.
            tx.query_opt("SELECT 1 FROM holds WHERE id = $1 FOR UPDATE", &[&id])?;
            let found = load_holds(&mut tx, "id = $1", Some(id))?;
            let Some(mut hold) = found.into_iter().next() else {
                return Ok(ReleaseOutcome::Unknown);
            };
            if hold.released.is_some() {
                return Ok(ReleaseOutcome::AlreadyReleased(hold));
            }
            tx.execute(
                "UPDATE holds SET released_at = $1, released_by = $2, release_reason = $3 \
                 WHERE id = $4 AND released_at IS NULL",
                &[&r.at, &r.by, &r.reason, &id],
            )?;
            tx.commit()?;
            hold.released = Some(r.clone());
            Ok(ReleaseOutcome::Released(hold))
        })
    }

    fn insert_tombstone(&self, t: &TombstoneRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO tombstones (segment_id, session_id, sequence, created_at, \
                 tombstone, sha256) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &t.segment_id,
                    &t.session_id,
                    &t.sequence,
                    &t.created_at,
                    &t.tombstone,
                    &t.sha256,
                ],
            )?;
            Ok(())
        })
    }

    fn tombstone(&self, segment_id: Uuid) -> Result<Option<TombstoneRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                "SELECT segment_id, session_id, sequence, created_at, tombstone, sha256 \
                 FROM tombstones WHERE segment_id = $1",
                &[&segment_id],
            )?
            .map(|r| {
                Ok(TombstoneRecord {
                    segment_id: r.try_get(0)?,
                    session_id: r.try_get(1)?,
                    sequence: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    tombstone: r.try_get(4)?,
                    sha256: r.try_get(5)?,
                })
            })
            .transpose()
        })
    }
}
