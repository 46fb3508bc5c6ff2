//! [`AccessStore`] on PostgreSQL, and the upgrade of databases made before it existed.

use postgres::Row;
use uuid::Uuid;

use super::rows::{audit_row, rows};
use super::PostgresStore;
use crate::metadata::access::{
    teams_from_text, teams_to_text, AccessStore, Account, ApiTokenRecord, AuditQuery,
    MediaLinkRecord, RecordingFilter, RecordingRecord, SessionRecord, TotpRecord,
};
use crate::metadata::{AuditRecord, StoreError, UserRecord};

const ACCOUNT_COLUMNS: &str = "name, role, password_hash, must_change_password, teams, disabled_at";

fn account_row(r: &Row) -> Result<Account, StoreError> {
    let teams: Option<String> = r.try_get(4)?;
    Ok(Account {
        user: UserRecord {
            name: r.try_get(0)?,
            role: r.try_get(1)?,
            password_hash: r.try_get(2)?,
            must_change_password: r.try_get(3)?,
        },
        teams: teams_from_text(teams.as_deref())?,
        disabled_at: r.try_get(5)?,
    })
}

const SESSION_COLUMNS: &str =
    "id_sha256, csrf_sha256, user_name, created_at, last_seen_at, expires_at";

fn session_row(r: &Row) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        id_sha256: r.try_get(0)?,
        csrf_sha256: r.try_get(1)?,
        user_name: r.try_get(2)?,
        created_at: r.try_get(3)?,
        last_seen_at: r.try_get(4)?,
        expires_at: r.try_get(5)?,
    })
}

const API_TOKEN_COLUMNS: &str = "id, token_sha256, user_name, created_at, expires_at, revoked_at";

fn api_token_row(r: &Row) -> Result<ApiTokenRecord, StoreError> {
    Ok(ApiTokenRecord {
        id: r.try_get(0)?,
        token_sha256: r.try_get(1)?,
        user_name: r.try_get(2)?,
        created_at: r.try_get(3)?,
        expires_at: r.try_get(4)?,
        revoked_at: r.try_get(5)?,
    })
}

const MEDIA_LINK_COLUMNS: &str =
    "link_sha256, user_name, session_id, sequence, kind, disposition, expires_at";

const RECORDING_COLUMNS: &str = "session_id, sequence, device_id, agent, team, call_id, masked, \
                                 start_at, end_at, policy_version";

fn recording_row(r: &Row) -> Result<RecordingRecord, StoreError> {
    Ok(RecordingRecord {
        session_id: r.try_get(0)?,
        sequence: r.try_get(1)?,
        device_id: r.try_get(2)?,
        agent: r.try_get(3)?,
        team: r.try_get(4)?,
        call_id: r.try_get(5)?,
        masked: r.try_get(6)?,
        start: r.try_get(7)?,
        end: r.try_get(8)?,
        policy_version: r.try_get(9)?,
    })
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl AccessStore for PostgresStore {
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE name = $1"),
                &[&name],
            )?
            .map(|r| account_row(&r))
            .transpose()
        })
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY name"),
                &[],
            )?;
            rows(found, account_row)
        })
    }

    fn set_user_role(&self, name: &str, role: &str) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "UPDATE users SET role = $1 WHERE name = $2",
                &[&role, &name],
            )?;
            Ok(n > 0)
        })
    }

    fn set_user_teams(&self, name: &str, teams: &[String]) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "UPDATE users SET teams = $1 WHERE name = $2",
                &[&teams_to_text(teams), &name],
            )?;
            Ok(n > 0)
        })
    }

    fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT totp_secret, totp_last_step FROM users WHERE name = $1",
                &[&name],
            )?;
            Ok(row.and_then(|r| {
                r.get::<_, Option<String>>(0)
                    .map(|sealed_secret| TotpRecord {
                        sealed_secret,
                        last_step: r.get(1),
                    })
            }))
        })
    }

    fn set_totp(&self, name: &str, sealed_secret: Option<&str>) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "UPDATE users SET totp_secret = $1, totp_last_step = NULL \
                 WHERE name = $2 AND ($1::TEXT IS NULL OR totp_last_step IS NULL)",
                &[&sealed_secret, &name],
            )?;
            Ok(n > 0)
        })
    }

    fn end_sessions(&self, name: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        self.with_client(|c| {
            Ok(c.execute(
                "DELETE FROM console_sessions WHERE user_name = $1 AND id_sha256 IS DISTINCT FROM $2",
                &[&name, &keep],
            )?)
        })
    }

    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let n = c.execute(
                "UPDATE users SET totp_last_step = $1 WHERE name = $2 AND totp_secret IS NOT NULL \
                 AND (totp_last_step IS NULL OR totp_last_step < $1)",
                &[&step, &name],
            )?;
            Ok(n > 0)
        })
    }

    fn set_user_disabled(&self, name: &str, at: Option<i64>) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE users SET disabled_at = $1 WHERE name = $2",
                &[&at, &name],
            )?;
            if at.is_some() {
                tx.execute(
                    "DELETE FROM console_sessions WHERE user_name = $1",
                    &[&name],
                )?;
            }
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE users SET password_hash = $1, must_change_password = $2 WHERE name = $3",
                &[&password_hash, &must_change, &name],
            )?;
            tx.execute(
                "DELETE FROM console_sessions WHERE user_name = $1 \
                 AND id_sha256 IS DISTINCT FROM $2",
                &[&name, &keep_session],
            )?;
            tx.execute(
                "UPDATE api_tokens SET revoked_at = $1 WHERE user_name = $2 AND revoked_at IS NULL",
                &[&now, &name],
            )?;
            tx.commit()?;
            Ok(n > 0)
        })
    }

    fn insert_session(&self, s: &SessionRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO console_sessions ({SESSION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &s.id_sha256,
                    &s.csrf_sha256,
                    &s.user_name,
                    &s.created_at,
                    &s.last_seen_at,
                    &s.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM console_sessions WHERE id_sha256 = $1"),
                &[&id_sha256],
            )?
            .map(|r| session_row(&r))
            .transpose()
        })
    }

    fn touch_session(&self, id_sha256: &str, now: i64) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "UPDATE console_sessions SET last_seen_at = $1 \
                 WHERE id_sha256 = $2 AND last_seen_at < $1",
                &[&now, &id_sha256],
            )?;
            Ok(())
        })
    }

    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "DELETE FROM console_sessions WHERE id_sha256 = $1",
                &[&id_sha256],
            )?;
            Ok(())
        })
    }

    fn delete_expired_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        self.with_client(|c| {
            Ok(c.execute(
                "DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
                &[&now, &idle_before],
            )?)
        })
    }

    fn login_failure(&self, key: &str, now: i64, forget_before: i64) -> Result<i64, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            let count: i64 = tx
                .query_one(
                    "INSERT INTO login_failures (throttle_key, failures, last_at) \
                     VALUES ($1, 1, $2) ON CONFLICT (throttle_key) DO UPDATE SET failures = CASE WHEN login_failures.last_at < $3 \
                 AND (login_failures.locked_until IS NULL OR login_failures.locked_until <= $2) \
                 THEN 1 ELSE login_failures.failures + 1 END, last_at = $2 \
                 RETURNING failures",
                    &[&key, &now, &forget_before],
                )?
                .try_get(0)?;
            tx.execute(
                "DELETE FROM login_failures WHERE last_at < $1 \
                 AND (locked_until IS NULL OR locked_until <= $2)",
                &[&forget_before, &now],
            )?;
            tx.commit()?;
            Ok(count)
        })
    }

    fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "UPDATE login_failures SET locked_until = $1 WHERE throttle_key = $2",
                &[&until, &key],
            )?;
            Ok(())
        })
    }

    fn login_locked_until(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError> {
        self.with_client(|c| {
            Ok(c.query_one(
                "SELECT max(locked_until) FROM login_failures \
                 WHERE throttle_key = ANY($1) AND locked_until > $2",
                &[&keys, &now],
            )?
            .try_get(0)?)
        })
    }

    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "DELETE FROM login_failures WHERE throttle_key = $1",
                &[&key],
            )?;
            Ok(())
        })
    }

    fn insert_api_token(&self, t: &ApiTokenRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO api_tokens ({API_TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
                ),
                &[
                    &t.id,
                    &t.token_sha256,
                    &t.user_name,
                    &t.created_at,
                    &t.expires_at,
                    &t.revoked_at,
                ],
            )?;
            Ok(())
        })
    }

    fn api_token(&self, token_sha256: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE token_sha256 = $1"),
                &[&token_sha256],
            )?
            .map(|r| api_token_row(&r))
            .transpose()
        })
    }

    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                &format!("SELECT {API_TOKEN_COLUMNS} FROM api_tokens ORDER BY created_at, id"),
                &[],
            )?;
            rows(found, api_token_row)
        })
    }

    fn revoke_api_token(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        self.with_client(|c| {
            let exists: bool = c
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM api_tokens WHERE id = $1)",
                    &[&id],
                )?
                .try_get(0)?;
            c.execute(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                &[&now, &id],
            )?;
            Ok(exists)
        })
    }

    fn insert_media_link(&self, l: &MediaLinkRecord, now: i64) -> Result<(), StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            tx.execute("DELETE FROM media_links WHERE expires_at <= $1", &[&now])?;
            tx.execute(
                &format!(
                    "INSERT INTO media_links ({MEDIA_LINK_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)"
                ),
                &[
                    &l.link_sha256,
                    &l.user_name,
                    &l.session_id,
                    &l.sequence,
                    &l.kind,
                    &l.disposition,
                    &l.expires_at,
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn media_link(
        &self,
        link_sha256: &str,
        now: i64,
    ) -> Result<Option<MediaLinkRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!(
                    "SELECT {MEDIA_LINK_COLUMNS} FROM media_links \
                     WHERE link_sha256 = $1 AND expires_at > $2"
                ),
                &[&link_sha256, &now],
            )?
            .map(|r| {
                Ok(MediaLinkRecord {
                    link_sha256: r.try_get(0)?,
                    user_name: r.try_get(1)?,
                    session_id: r.try_get(2)?,
                    sequence: r.try_get(3)?,
                    kind: r.try_get(4)?,
                    disposition: r.try_get(5)?,
                    expires_at: r.try_get(6)?,
                })
            })
            .transpose()
        })
    }

    fn put_recording(&self, r: &RecordingRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO recordings ({RECORDING_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (session_id, sequence) DO UPDATE SET device_id = $3, \
                     agent = $4, team = $5, call_id = $6, masked = $7, start_at = $8, \
                     end_at = $9, policy_version = $10"
                ),
                &[
                    &r.session_id,
                    &r.sequence,
                    &r.device_id,
                    &r.agent,
                    &r.team,
                    &r.call_id,
                    &r.masked,
                    &r.start,
                    &r.end,
                    &r.policy_version,
                ],
            )?;
            Ok(())
        })
    }

    fn recording(
        &self,
        session: Uuid,
        sequence: i64,
    ) -> Result<Option<RecordingRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!(
                    "SELECT {RECORDING_COLUMNS} FROM recordings \
                     WHERE session_id = $1 AND sequence = $2"
                ),
                &[&session, &sequence],
            )?
            .map(|r| recording_row(&r))
            .transpose()
        })
    }

    fn recordings(&self, f: &RecordingFilter) -> Result<Vec<RecordingRecord>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                &format!(
                    "SELECT {RECORDING_COLUMNS} FROM recordings \
                     WHERE ($1::text IS NULL OR agent = $1) AND ($2::text IS NULL OR team = $2) \
                     AND ($3::text[] IS NULL OR team = ANY($3)) \
                     AND ($4::bigint IS NULL OR end_at >= $4) \
                     AND ($5::bigint IS NULL OR start_at < $5) \
                     AND ($6::text IS NULL OR call_id = $6) \
                     AND ($7::boolean IS NULL OR masked = $7) \
                     AND ($9::bigint IS NULL OR policy_version = $9) \
                     AND ($10::uuid IS NULL OR session_id = $10) \
                     ORDER BY start_at, session_id, sequence LIMIT $8"
                ),
                &[
                    &f.agent,
                    &f.team,
                    &f.teams,
                    &f.from,
                    &f.to,
                    &f.call_id,
                    &f.masked,
                    &limit(f.limit),
                    &f.policy_version,
                    &f.session,
                ],
            )?;
            rows(found, recording_row)
        })
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                "SELECT seq, at, actor, action, target, reason, prev_sha256, sha256, \
                 client_addr, user_agent FROM audit_log WHERE seq > $1 AND ($2::text IS NULL OR actor = $2) \
                 AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR target = $4) \
                 AND ($5::bigint IS NULL OR at >= $5) AND ($6::bigint IS NULL OR at < $6) \
                 ORDER BY seq LIMIT $7",
                &[
                    &q.after,
                    &q.actor,
                    &q.action,
                    &q.target,
                    &q.from,
                    &q.to,
                    &limit(q.limit),
                ],
            )?;
            rows(found, audit_row)
        })
    }
}
