//! [`AccessStore`] on SQLite, and the upgrade of databases made before it existed.

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use uuid::Uuid;

use super::rows::uuid_col;
use super::SqliteStore;
use crate::metadata::access::{
    teams_from_text, teams_to_text, AccessStore, Account, ApiTokenRecord, AuditQuery,
    MediaLinkRecord, RecordingFilter, RecordingRecord, SessionRecord, TotpRecord,
};
use crate::metadata::{AuditDraft, AuditRecord, StoreError, UserRecord};

const ACCOUNT_COLUMNS: &str = "name, role, password_hash, must_change_password, teams, disabled_at";

fn account_row(r: &Row<'_>) -> rusqlite::Result<(Account, Option<String>)> {
    Ok((
        Account {
            user: UserRecord {
                name: r.get(0)?,
                role: r.get(1)?,
                password_hash: r.get(2)?,
                must_change_password: r.get(3)?,
            },
            teams: Vec::new(),
            disabled_at: r.get(5)?,
        },
        r.get(4)?,
    ))
}

fn with_teams((mut account, teams): (Account, Option<String>)) -> Result<Account, StoreError> {
    account.teams = teams_from_text(teams.as_deref())?;
    Ok(account)
}

const SESSION_COLUMNS: &str =
    "id_sha256, csrf_sha256, user_name, created_at, last_seen_at, expires_at";

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id_sha256: r.get(0)?,
        csrf_sha256: r.get(1)?,
        user_name: r.get(2)?,
        created_at: r.get(3)?,
        last_seen_at: r.get(4)?,
        expires_at: r.get(5)?,
    })
}

const API_TOKEN_COLUMNS: &str = "id, token_sha256, user_name, created_at, expires_at, revoked_at";

fn api_token_row(r: &Row<'_>) -> rusqlite::Result<ApiTokenRecord> {
    Ok(ApiTokenRecord {
        id: uuid_col(r, 0)?,
        token_sha256: r.get(1)?,
        user_name: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
    })
}

const MEDIA_LINK_COLUMNS: &str =
    "link_sha256, user_name, session_id, sequence, kind, disposition, expires_at";

const RECORDING_COLUMNS: &str = "session_id, sequence, device_id, agent, team, call_id, masked, \
                                 start_at, end_at, policy_version";

fn recording_row(r: &Row<'_>) -> rusqlite::Result<RecordingRecord> {
    Ok(RecordingRecord {
        session_id: uuid_col(r, 0)?,
        sequence: r.get(1)?,
        device_id: uuid_col(r, 2)?,
        agent: r.get(3)?,
        team: r.get(4)?,
        call_id: r.get(5)?,
        masked: r.get(6)?,
        start: r.get(7)?,
        end: r.get(8)?,
        policy_version: r.get(9)?,
    })
}

fn audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRecord> {
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
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl AccessStore for SqliteStore {
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.conn()
            .query_row(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE name = ?1"),
                params![name],
                account_row,
            )
            .optional()?
            .map(with_teams)
            .transpose()
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY name"
        ))?;
        let rows = stmt.query_map([], account_row)?;
        rows.map(|r| with_teams(r?)).collect()
    }

    fn set_user_role(&self, name: &str, role: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE users SET role = ?1 WHERE name = ?2",
            params![role, name],
        )?;
        Ok(n > 0)
    }

    fn set_user_teams(&self, name: &str, teams: &[String]) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE users SET teams = ?1 WHERE name = ?2",
            params![teams_to_text(teams), name],
        )?;
        Ok(n > 0)
    }

    fn set_user_disabled(&self, name: &str, at: Option<i64>) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET disabled_at = ?1 WHERE name = ?2",
            params![at, name],
        )?;
        if at.is_some() {
            tx.execute(
                "DELETE FROM console_sessions WHERE user_name = ?1",
                params![name],
            )?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT totp_secret, totp_last_step FROM users WHERE name = ?1",
                [name],
                |r| Ok((r.get::<_, Option<String>>(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(row.and_then(|(secret, last_step)| {
            secret.map(|sealed_secret| TotpRecord {
                sealed_secret,
                last_step,
            })
        }))
    }

    fn set_totp(&self, name: &str, sealed_secret: Option<&str>) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE users SET totp_secret = ?1, totp_last_step = NULL \
             WHERE name = ?2 AND (?1 IS NULL OR totp_last_step IS NULL)",
            params![sealed_secret, name],
        )?;
        Ok(n > 0)
    }

    fn end_sessions(&self, name: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM console_sessions WHERE user_name = ?1 AND id_sha256 IS NOT ?2",
            params![name, keep],
        )?;
        Ok(n as u64)
    }

    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE users SET totp_last_step = ?1 WHERE name = ?2 AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < ?1)",
            params![step, name],
        )?;
        Ok(n > 0)
    }

    fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?1, must_change_password = ?2 WHERE name = ?3",
            params![password_hash, must_change, name],
        )?;
        tx.execute(
            "DELETE FROM console_sessions WHERE user_name = ?1 AND id_sha256 IS NOT ?2",
            params![name, keep_session],
        )?;
        tx.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE user_name = ?2 AND revoked_at IS NULL",
            params![now, name],
        )?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT INTO console_sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![
                s.id_sha256,
                s.csrf_sha256,
                s.user_name,
                s.created_at,
                s.last_seen_at,
                s.expires_at
            ],
        )?;
        Ok(())
    }

    fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE id_sha256 = ?1"
            ))?
            .query_row(params![id_sha256], session_row)
            .optional()?)
    }

    fn touch_session(&self, id_sha256: &str, now: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE console_sessions SET last_seen_at = ?1 WHERE id_sha256 = ?2 AND last_seen_at < ?1",
            params![now, id_sha256],
        )?;
        Ok(())
    }

    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM console_sessions WHERE id_sha256 = ?1",
            params![id_sha256],
        )?;
        Ok(())
    }

    fn delete_expired_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM console_sessions WHERE expires_at <= ?1 OR last_seen_at < ?2",
            params![now, idle_before],
        )?;
        Ok(n as u64)
    }

    fn login_failure(&self, key: &str, now: i64, forget_before: i64) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let count = tx.query_row(
            "INSERT INTO login_failures (throttle_key, failures, last_at) VALUES (?1, 1, ?2) \
             ON CONFLICT (throttle_key) DO UPDATE SET failures = CASE WHEN login_failures.last_at < ?3 \
                 AND (login_failures.locked_until IS NULL OR login_failures.locked_until <= ?2) \
                 THEN 1 ELSE login_failures.failures + 1 END, last_at = ?2 \
                 RETURNING failures",
            params![key, now, forget_before],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM login_failures WHERE last_at < ?1 \
             AND (locked_until IS NULL OR locked_until <= ?2)",
            params![forget_before, now],
        )?;
        tx.commit()?;
        Ok(count)
    }

    fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE login_failures SET locked_until = ?1 WHERE throttle_key = ?2",
            params![until, key],
        )?;
        Ok(())
    }

    fn login_locked_until(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError> {
        let keys = serde_json::to_string(keys).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(self.reader().query_row(
            "SELECT max(locked_until) FROM login_failures \
             WHERE throttle_key IN (SELECT value FROM json_each(?1)) AND locked_until > ?2",
            params![keys, now],
            |r| r.get(0),
        )?)
    }

    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "DELETE FROM login_failures WHERE throttle_key = ?1",
            params![key],
        )?;
        Ok(())
    }

    fn insert_api_token(&self, t: &ApiTokenRecord) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT INTO api_tokens ({API_TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![
                t.id.to_string(),
                t.token_sha256,
                t.user_name,
                t.created_at,
                t.expires_at,
                t.revoked_at
            ],
        )?;
        Ok(())
    }

    fn api_token(&self, token_sha256: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE token_sha256 = ?1"
            ))?
            .query_row(params![token_sha256], api_token_row)
            .optional()?)
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([], api_token_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn revoke_api_token(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = ?1)",
            params![id.to_string()],
            |r| r.get(0),
        )?;
        conn.execute(
            "UPDATE api_tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL",
            params![now, id.to_string()],
        )?;
        Ok(exists)
    }

    fn insert_media_link(&self, l: &MediaLinkRecord, now: i64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM media_links WHERE expires_at <= ?1",
            params![now],
        )?;
        tx.execute(
            &format!("INSERT INTO media_links ({MEDIA_LINK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                l.link_sha256,
                l.user_name,
                l.session_id.to_string(),
                l.sequence,
                l.kind,
                l.disposition,
                l.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn media_link(
        &self,
        link_sha256: &str,
        now: i64,
    ) -> Result<Option<MediaLinkRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {MEDIA_LINK_COLUMNS} FROM media_links WHERE link_sha256 = ?1 AND expires_at > ?2"
            ))?
            .query_row(params![link_sha256, now], |r| {
                Ok(MediaLinkRecord {
                    link_sha256: r.get(0)?,
                    user_name: r.get(1)?,
                    session_id: uuid_col(r, 2)?,
                    sequence: r.get(3)?,
                    kind: r.get(4)?,
                    disposition: r.get(5)?,
                    expires_at: r.get(6)?,
                })
            })
            .optional()?)
    }

    fn put_recording(&self, r: &RecordingRecord) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT OR REPLACE INTO recordings ({RECORDING_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                r.session_id.to_string(),
                r.sequence,
                r.device_id.to_string(),
                r.agent,
                r.team,
                r.call_id,
                r.masked,
                r.start,
                r.end,
                r.policy_version
            ],
        )?;
        Ok(())
    }

    fn recording(
        &self,
        session: Uuid,
        sequence: i64,
    ) -> Result<Option<RecordingRecord>, StoreError> {
        Ok(self
            .reader()
            .prepare_cached(&format!(
                "SELECT {RECORDING_COLUMNS} FROM recordings WHERE session_id = ?1 AND sequence = ?2"
            ))?
            .query_row(params![session.to_string(), sequence], recording_row)
            .optional()?)
    }

    fn recordings(&self, f: &RecordingFilter) -> Result<Vec<RecordingRecord>, StoreError> {
        let teams = f.teams.as_ref().map(|t| teams_to_text(t));
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RECORDING_COLUMNS} FROM recordings \
             WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR team = ?2) \
             AND (?3 IS NULL OR team IN (SELECT value FROM json_each(?3))) \
             AND (?4 IS NULL OR end_at >= ?4) AND (?5 IS NULL OR start_at < ?5) \
             AND (?6 IS NULL OR call_id = ?6) AND (?7 IS NULL OR masked = ?7) \
             AND (?9 IS NULL OR policy_version = ?9) AND (?10 IS NULL OR session_id = ?10) \
             ORDER BY start_at, session_id, sequence LIMIT ?8"
        ))?;
        let rows = stmt.query_map(
            params![
                f.agent,
                f.team,
                teams,
                f.from,
                f.to,
                f.call_id,
                f.masked,
                limit(f.limit),
                f.policy_version,
                f.session.map(|s| s.to_string())
            ],
            recording_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, action, target, reason, prev_sha256, sha256, client_addr, \
             user_agent FROM audit_log \
             WHERE seq > ?1 AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action = ?3) \
             AND (?4 IS NULL OR target = ?4) AND (?5 IS NULL OR at >= ?5) \
             AND (?6 IS NULL OR at < ?6) ORDER BY seq LIMIT ?7",
        )?;
        let rows = stmt.query_map(
            params![
                q.after,
                q.actor,
                q.action,
                q.target,
                q.from,
                q.to,
                limit(q.limit)
            ],
            audit_row,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::sqlite::schema::SCHEMA;
    use rusqlite::Connection;

    /// A database made before this module existed (schema version 1 without its tables and
    /// columns) opens, upgraded, with its accounts intact.
    #[test]
    fn an_older_database_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let marker = "-- Access control and recordings search";
        let old_schema = &SCHEMA[..SCHEMA.find(marker).expect("marker in schema.sql")];
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(&format!(
                "{old_schema} PRAGMA user_version = 1; \
                 INSERT INTO users VALUES ('admin', 'admin', 'h', 1, 0);"
            ))
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let admin = store.account("admin").unwrap().unwrap();
        assert!(admin.teams.is_empty());
        assert!(store.set_user_teams("admin", &["x".into()]).unwrap());
        assert!(store.accounts().unwrap().len() == 1);
        drop(store);
        // Opening again is a no-op.
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.account("admin").unwrap().unwrap().teams, vec!["x"]);
    }
}
