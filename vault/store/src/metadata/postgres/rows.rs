//! How PostgreSQL rows become records (shared by the store and its areas).

use postgres::Row;

use crate::metadata::{AuditDraft, AuditRecord, DeviceRecord, SegmentRecord, StoreError};

pub(super) const DEVICE_COLUMNS: &str =
    "id, public_key, key_id, hostname, os_user, team, enrolled_at, revoked_at";

pub(super) fn device_row(row: &Row) -> Result<DeviceRecord, StoreError> {
    let key: Vec<u8> = row.try_get(1)?;
    let public_key: [u8; 32] = key
        .try_into()
        .map_err(|_| StoreError::Corrupt("device public key is not 32 bytes".into()))?;
    Ok(DeviceRecord {
        id: row.try_get(0)?,
        public_key,
        key_id: row.try_get(2)?,
        hostname: row.try_get(3)?,
        user: row.try_get(4)?,
        team: row.try_get(5)?,
        enrolled_at: row.try_get(6)?,
        revoked_at: row.try_get(7)?,
    })
}

pub(super) const SEGMENT_COLUMNS: &str =
    "segment_id, session_id, sequence, device_id, manifest_sha256, \
     prev_manifest_sha256, last_in_session, recorded_at, received_at, receipt";

pub(super) fn segment_row(row: &Row) -> Result<SegmentRecord, StoreError> {
    Ok(SegmentRecord {
        segment_id: row.try_get(0)?,
        session_id: row.try_get(1)?,
        sequence: row.try_get(2)?,
        device_id: row.try_get(3)?,
        manifest_sha256: row.try_get(4)?,
        prev_manifest_sha256: row.try_get(5)?,
        last_in_session: row.try_get(6)?,
        recorded_at: row.try_get(7)?,
        received_at: row.try_get(8)?,
        receipt: row.try_get(9)?,
    })
}

pub(super) fn audit_row(row: &Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get(0)?,
        draft: AuditDraft {
            at: row.try_get(1)?,
            actor: row.try_get(2)?,
            action: row.try_get(3)?,
            target: row.try_get(4)?,
            reason: row.try_get(5)?,
            client_addr: row.try_get(8)?,
            user_agent: row.try_get(9)?,
        },
        prev_sha256: row.try_get(6)?,
        sha256: row.try_get(7)?,
    })
}

pub(super) fn rows<T>(
    rows: Vec<Row>,
    f: fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}
