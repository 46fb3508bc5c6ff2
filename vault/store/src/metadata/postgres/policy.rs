//! [`PolicyStore`] on PostgreSQL.

use postgres::Row;

use super::PostgresStore;
use crate::metadata::policy::{PolicyLayerRow, PolicyStore};
use crate::metadata::StoreError;

const COLUMNS: &str = "version, scope, document, author, reason, at";

fn row(r: &Row) -> Result<PolicyLayerRow, StoreError> {
    Ok(PolicyLayerRow {
        version: r.try_get(0)?,
        scope: r.try_get(1)?,
        document: r.try_get(2)?,
        author: r.try_get(3)?,
        reason: r.try_get(4)?,
        at: r.try_get(5)?,
    })
}

impl PolicyStore for PostgresStore {
    fn put_policy_layer(
        &self,
        scope: &str,
        document: &str,
        author: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // Two vaults changing policy at once must not take the same version.
            tx.batch_execute("LOCK TABLE policy_layers IN EXCLUSIVE MODE")?;
            let version: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM policy_layers",
                    &[],
                )?
                .try_get(0)?;
            tx.execute(
                "INSERT INTO policy_layers (version, scope, document, author, reason, at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&version, &scope, &document, &author, &reason, &at],
            )?;
            tx.commit()?;
            Ok(version)
        })
    }

    fn policy_layers(&self) -> Result<Vec<PolicyLayerRow>, StoreError> {
        self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT DISTINCT ON (scope) {COLUMNS} FROM policy_layers \
                     ORDER BY scope, version DESC"
                ),
                &[],
            )?
            .iter()
            .map(row)
            .collect()
        })
    }

    fn policy_history(&self, scope: Option<&str>) -> Result<Vec<PolicyLayerRow>, StoreError> {
        self.with_client(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM policy_layers WHERE $1::TEXT IS NULL OR scope = $1 \
                     ORDER BY version"
                ),
                &[&scope],
            )?
            .iter()
            .map(row)
            .collect()
        })
    }

    fn policy_version(&self) -> Result<i64, StoreError> {
        self.with_client(|c| {
            Ok(
                c.query_one("SELECT COALESCE(MAX(version), 0) FROM policy_layers", &[])?
                    .try_get(0)?,
            )
        })
    }
}
