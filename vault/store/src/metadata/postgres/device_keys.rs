//! [`DeviceKeyStore`] on PostgreSQL.

use uuid::Uuid;

use super::rows::{device_row, DEVICE_COLUMNS};
use super::PostgresStore;
use crate::metadata::device_keys::{DeviceKeyStore, RekeyOutcome, RetiredDeviceKey};
use crate::metadata::{DeviceRecord, StoreError};

fn key32(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("device public key is not 32 bytes".into()))
}

impl DeviceKeyStore for PostgresStore {
    fn rekey_device(
        &self,
        id: Uuid,
        current: &[u8; 32],
        new: &[u8; 32],
        new_key_id: &str,
        at: i64,
    ) -> Result<RekeyOutcome, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // One re-key at a time: two racing for one device, or one new key, cannot both win.
            tx.batch_execute("LOCK TABLE retired_device_keys IN EXCLUSIVE MODE")?;
            let (current, new) = (current.as_slice(), new.as_slice());
            let in_use: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM devices WHERE public_key = $1) \
                     OR EXISTS (SELECT 1 FROM retired_device_keys WHERE public_key = $1)",
                    &[&new],
                )?
                .try_get(0)?;
            if in_use {
                return Ok(RekeyOutcome::KeyInUse);
            }
            let Some(row) = tx.query_opt(
                "SELECT key_id FROM devices WHERE id = $1 AND public_key = $2 FOR UPDATE",
                &[&id, &current],
            )?
            else {
                return Ok(RekeyOutcome::KeyChanged);
            };
            let old_key_id: String = row.try_get(0)?;
            tx.execute(
                "INSERT INTO retired_device_keys (public_key, device_id, key_id, retired_at) \
                 VALUES ($1, $2, $3, $4)",
                &[&current, &id, &old_key_id, &at],
            )?;
            tx.execute(
                "UPDATE devices SET public_key = $1, key_id = $2 WHERE id = $3",
                &[&new, &new_key_id, &id],
            )?;
            tx.commit()?;
            Ok(RekeyOutcome::Rekeyed)
        })
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
        self.with_client(|c| {
            c.query_opt(
                &format!(
                    "SELECT {columns}, r.retired_at FROM retired_device_keys r \
                     JOIN devices d ON d.id = r.device_id WHERE r.public_key = $1"
                ),
                &[&public_key.as_slice()],
            )?
            .map(|row| Ok((device_row(&row)?, row.try_get(8)?)))
            .transpose()
        })
    }

    fn retired_device_keys(&self) -> Result<Vec<RetiredDeviceKey>, StoreError> {
        self.with_client(|c| {
            c.query(
                "SELECT device_id, public_key, key_id, retired_at FROM retired_device_keys \
                 ORDER BY retired_at, key_id",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(RetiredDeviceKey {
                    device_id: r.try_get(0)?,
                    public_key: key32(r.try_get(1)?)?,
                    key_id: r.try_get(2)?,
                    retired_at: r.try_get(3)?,
                })
            })
            .collect()
        })
    }
}
