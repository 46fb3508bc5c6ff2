//! How SQLite rows become records (shared by the store, its areas and the group commit).

use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use crate::metadata::lifecycle::RetentionTerms;
use crate::metadata::{DeviceRecord, SegmentRecord};

pub(super) fn uuid_col(row: &Row<'_>, idx: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(idx)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) const DEVICE_COLUMNS: &str =
    "id, public_key, key_id, hostname, user, team, enrolled_at, revoked_at";

pub(super) fn device_row(row: &Row<'_>) -> rusqlite::Result<DeviceRecord> {
    let key: Vec<u8> = row.get(1)?;
    let public_key: [u8; 32] = key.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Blob,
            "public key is not 32 bytes".into(),
        )
    })?;
    Ok(DeviceRecord {
        id: uuid_col(row, 0)?,
        public_key,
        key_id: row.get(2)?,
        hostname: row.get(3)?,
        user: row.get(4)?,
        team: row.get(5)?,
        enrolled_at: row.get(6)?,
        revoked_at: row.get(7)?,
    })
}

pub(super) const SEGMENT_COLUMNS: &str =
    "segment_id, session_id, sequence, device_id, manifest_sha256, \
     prev_manifest_sha256, last_in_session, recorded_at, received_at, receipt";

pub(super) fn segment_row(row: &Row<'_>) -> rusqlite::Result<SegmentRecord> {
    Ok(SegmentRecord {
        segment_id: uuid_col(row, 0)?,
        session_id: uuid_col(row, 1)?,
        sequence: row.get(2)?,
        device_id: uuid_col(row, 3)?,
        manifest_sha256: row.get(4)?,
        prev_manifest_sha256: row.get(5)?,
        last_in_session: row.get(6)?,
        recorded_at: row.get(7)?,
        received_at: row.get(8)?,
        receipt: row.get(9)?,
    })
}

/// Fixes a segment's terms unless fixed before (inside the caller's transaction).
pub(super) fn set_terms(
    conn: &Connection,
    segment_id: Uuid,
    t: &RetentionTerms,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE segments SET policy_version = ?1, ended_at = ?2, voice_expires_at = ?3, \
         screen_expires_at = ?4 WHERE segment_id = ?5 AND policy_version IS NULL",
    )?
    .execute(params![
        t.policy_version,
        t.ended_at,
        t.voice_expires_at,
        t.screen_expires_at,
        segment_id.to_string()
    ])
}
