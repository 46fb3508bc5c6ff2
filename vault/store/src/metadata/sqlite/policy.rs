//! [`PolicyStore`] on SQLite.

use rusqlite::{params, Row, TransactionBehavior};

use super::SqliteStore;
use crate::metadata::policy::{PolicyLayerRow, PolicyStore};
use crate::metadata::StoreError;

const COLUMNS: &str = "version, scope, document, author, reason, at";

fn row(r: &Row<'_>) -> rusqlite::Result<PolicyLayerRow> {
    Ok(PolicyLayerRow {
        version: r.get(0)?,
        scope: r.get(1)?,
        document: r.get(2)?,
        author: r.get(3)?,
        reason: r.get(4)?,
        at: r.get(5)?,
    })
}

impl PolicyStore for SqliteStore {
    fn put_policy_layer(
        &self,
        scope: &str,
        document: &str,
        author: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM policy_layers",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO policy_layers (version, scope, document, author, reason, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![version, scope, document, author, reason, at],
        )?;
        tx.commit()?;
        Ok(version)
    }

    fn policy_layers(&self) -> Result<Vec<PolicyLayerRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM policy_layers p WHERE version = \
             (SELECT MAX(version) FROM policy_layers q WHERE q.scope = p.scope) ORDER BY scope"
        ))?;
        let rows = stmt.query_map([], row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn policy_history(&self, scope: Option<&str>) -> Result<Vec<PolicyLayerRow>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM policy_layers WHERE ?1 IS NULL OR scope = ?1 ORDER BY version"
        ))?;
        let rows = stmt
            .query_map(params![scope], row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn policy_version(&self) -> Result<i64, StoreError> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM policy_layers")?;
        Ok(stmt.query_row([], |r| r.get(0))?)
    }
}
