//! [`DeviceKeyStore`] on SQLite.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::rows::{device_row, uuid_col, DEVICE_COLUMNS};
use super::SqliteStore;
use crate::metadata::device_keys::{DeviceKeyStore, RekeyOutcome, RetiredDeviceKey};
use crate::metadata::{DeviceRecord, StoreError};

fn key32(bytes: Vec<u8>, column: usize) -> rusqlite::Result<[u8; 32]> {
    bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Blob,
            "public key is not 32 bytes".into(),
        )
    })
}

impl DeviceKeyStore for SqliteStore {
    fn rekey_device(
        &self,
        id: Uuid,
        current: &[u8; 32],
        new: &[u8; 32],
        new_key_id: &str,
        at: i64,
    ) -> Result<RekeyOutcome, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let in_use: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM devices WHERE public_key = ?1) \
             OR EXISTS (SELECT 1 FROM retired_device_keys WHERE public_key = ?1)",
            params![new.as_slice()],
            |r| r.get(0),
        )?;
        if in_use {
            return Ok(RekeyOutcome::KeyInUse);
        }
        let old_key_id: Option<String> = tx
            .query_row(
                "SELECT key_id FROM devices WHERE id = ?1 AND public_key = ?2",
                params![id.to_string(), current.as_slice()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(old_key_id) = old_key_id else {
            return Ok(RekeyOutcome::KeyChanged);
        };
        tx.execute(
            "INSERT INTO retired_device_keys (public_key, device_id, key_id, retired_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![current.as_slice(), id.to_string(), old_key_id, at],
        )?;
        tx.execute(
            "UPDATE devices SET public_key = ?1, key_id = ?2 WHERE id = ?3",
            params![new.as_slice(), new_key_id, id.to_string()],
        )?;
        tx.commit()?;
        Ok(RekeyOutcome::Rekeyed)
    }

    fn device_by_retired_key(
        &self,
        public_key: &[u8; 32],
    ) -> Result<Option<(DeviceRecord, i64)>, StoreError> {
        let columns = DEVICE_COLUMNS
            .split(", ")
            .map(|c| format!("d.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {columns}, r.retired_at FROM retired_device_keys r \
                 JOIN devices d ON d.id = r.device_id WHERE r.public_key = ?1"
            ))?
            .query_row(params![public_key.as_slice()], |r| {
                Ok((device_row(r)?, r.get(8)?))
            })
            .optional()?)
    }

    fn retired_device_keys(&self) -> Result<Vec<RetiredDeviceKey>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT device_id, public_key, key_id, retired_at FROM retired_device_keys \
             ORDER BY retired_at, key_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RetiredDeviceKey {
                    device_id: uuid_col(r, 0)?,
                    public_key: key32(r.get(1)?, 1)?,
                    key_id: r.get(2)?,
                    retired_at: r.get(3)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
