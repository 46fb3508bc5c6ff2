//! The metadata of people and recordings: account details (teams, disabled), console
//! sessions, API tokens, the recordings index that search reads, and audit queries.
//!
//! Kept apart from [`super::MetadataStore`]'s core so each area's methods live together; every
//! backend implements it in its own `access` child module.

use uuid::Uuid;

use super::{AuditRecord, StoreError, UserRecord};

/// A console account with what access control needs beyond [`UserRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Name, role and password hash.
    pub user: UserRecord,
    /// Teams the account is limited to (a supervisor's teams); sorted, no duplicates.
    pub teams: Vec<String>,
    /// When the account was disabled, Unix seconds.
    pub disabled_at: Option<i64>,
}

/// An account's TOTP (RFC 6238) second factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The shared secret, sealed by the vault (never stored in the clear).
    pub sealed_secret: String,
    /// The time step of the last code accepted (none: enrolled, not confirmed yet). A code of
    /// this step or an earlier one is refused: each code opens one login.
    pub last_step: Option<i64>,
}

/// A console session as stored: only the hashes of its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 (hex) of the session cookie's value.
    pub id_sha256: String,
    /// SHA-256 (hex) of the session's CSRF token.
    pub csrf_sha256: String,
    /// The account.
    pub user_name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last use, Unix seconds (idle expiry counts from here).
    pub last_seen_at: i64,
    /// Absolute expiry, Unix seconds.
    pub expires_at: i64,
}

/// An API token as stored: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    /// Public id, for listing and revoking.
    pub id: Uuid,
    /// SHA-256 (hex) of the token text.
    pub token_sha256: String,
    /// The account it acts as.
    pub user_name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds (none: until revoked).
    pub expires_at: Option<i64>,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
}

/// A short-lived media link as stored: only the hash of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLinkRecord {
    /// SHA-256 (hex) of the link's secret.
    pub link_sha256: String,
    /// The account it was made for.
    pub user_name: String,
    /// Recording session.
    pub session_id: Uuid,
    /// Sequence number in the session.
    pub sequence: i64,
    /// `voice` or `screen`.
    pub kind: String,
    /// `inline` (play) or `attachment` (download).
    pub disposition: String,
    /// Expiry, Unix seconds: refused from this second on.
    pub expires_at: i64,
}

/// What search knows about one stored segment (written at ingest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRecord {
    /// Recording session.
    pub session_id: Uuid,
    /// Sequence number in the session.
    pub sequence: i64,
    /// The device that recorded it.
    pub device_id: Uuid,
    /// The recorded (OS) user, from the manifest.
    pub agent: String,
    /// The device's team at ingest.
    pub team: Option<String>,
    /// The call the segment belongs to, if the agent knew one.
    pub call_id: Option<String>,
    /// Whether the manifest lists masked spans.
    pub masked: bool,
    /// Start, Unix seconds.
    pub start: i64,
    /// End, Unix seconds.
    pub end: i64,
    /// The vault policy version it was recorded under (0: the device's local settings).
    pub policy_version: i64,
}

/// Which recordings to list (every given condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordingFilter {
    /// Only this recorded user.
    pub agent: Option<String>,
    /// Only this team.
    pub team: Option<String>,
    /// Only devices of these teams (a supervisor's scope); `None`: every team.
    pub teams: Option<Vec<String>>,
    /// Ending at or after this time, Unix seconds.
    pub from: Option<i64>,
    /// Starting before this time, Unix seconds.
    pub to: Option<i64>,
    /// Only this call.
    pub call_id: Option<String>,
    /// Only masked (true) or unmasked (false) segments.
    pub masked: Option<bool>,
    /// Only segments recorded under this policy version.
    pub policy_version: Option<i64>,
    /// One session's segments only.
    pub session: Option<uuid::Uuid>,
    /// At most this many rows.
    pub limit: usize,
}

/// Which audit records to list (every given condition must hold), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// At or after this time, Unix seconds.
    pub from: Option<i64>,
    /// Before this time, Unix seconds.
    pub to: Option<i64>,
    /// Only records after this position (paging).
    pub after: i64,
    /// At most this many records.
    pub limit: usize,
}

/// Storage of accounts, sessions, API tokens, the recordings index and audit queries.
pub trait AccessStore {
    /// An account by name.
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, by name.
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Changes an account's role; `false` when no such account exists.
    fn set_user_role(&self, name: &str, role: &str) -> Result<bool, StoreError>;
    /// Replaces an account's teams; `false` when no such account exists.
    fn set_user_teams(&self, name: &str, teams: &[String]) -> Result<bool, StoreError>;
    /// Disables an account (`Some(time)`) or enables it (`None`), and ends its sessions;
    /// `false` when no such account exists.
    fn set_user_disabled(&self, name: &str, at: Option<i64>) -> Result<bool, StoreError>;
    /// An account's second factor, if it has one.
    fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError>;
    /// Gives an account a new, unconfirmed second factor (`Some`) or removes it (`None`);
    /// `false` when no such account exists. A new factor replaces only an unconfirmed one, in
    /// the same statement (`false` when the account has a confirmed factor): a racing
    /// enrollment cannot swap out a factor confirmed meanwhile.
    fn set_totp(&self, name: &str, sealed_secret: Option<&str>) -> Result<bool, StoreError>;
    /// Ends the account's console sessions but `keep` (the session doing this, if any).
    fn end_sessions(&self, name: &str, keep: Option<&str>) -> Result<u64, StoreError>;
    /// Records that a code of time step `step` was accepted, atomically and only if no code
    /// of this step or a later one was (`false`: a replay, or no second factor).
    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError>;

    /// Replaces an account's password hash and its must-change flag, and in the same
    /// transaction ends the account's console sessions (all but `keep_session`, the one changing
    /// its own password) and revokes its API tokens at `now`: whoever held the old password
    /// keeps nothing it opened. `false` when no such account exists.
    fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError>;

    /// Stores a new session.
    fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError>;
    /// A session by the hash of its cookie.
    fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Records a use of a session.
    fn touch_session(&self, id_sha256: &str, now: i64) -> Result<(), StoreError>;
    /// Ends a session (no error if it is gone).
    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError>;
    /// Removes sessions past their absolute expiry (`expires_at <= now`) or idle since before
    /// `idle_before`; returns how many.
    fn delete_expired_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError>;

    /// Counts a failed password attempt for a throttle key (an account, an address) at `now`,
    /// starting again from 1 when the last failure is older than `forget_before` and no lock
    /// holds; forgets such stale keys. Returns the count.
    fn login_failure(&self, key: &str, now: i64, forget_before: i64) -> Result<i64, StoreError>;
    /// Locks a throttle key until `until` (Unix seconds).
    fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError>;
    /// The latest lock among `keys` still holding at `now`.
    fn login_locked_until(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError>;
    /// Forgets a throttle key's failures (after a correct password).
    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;

    /// Stores a new API token.
    fn insert_api_token(&self, token: &ApiTokenRecord) -> Result<(), StoreError>;
    /// An API token by the hash of its text.
    fn api_token(&self, token_sha256: &str) -> Result<Option<ApiTokenRecord>, StoreError>;
    /// Every API token, by creation time.
    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError>;
    /// Revokes an API token; `false` when no such token exists. Twice keeps the first time.
    fn revoke_api_token(&self, id: Uuid, now: i64) -> Result<bool, StoreError>;

    /// Stores a media link, and removes links expired before `now`.
    fn insert_media_link(&self, link: &MediaLinkRecord, now: i64) -> Result<(), StoreError>;
    /// A media link by the hash of its secret, if it has not expired at `now`.
    fn media_link(
        &self,
        link_sha256: &str,
        now: i64,
    ) -> Result<Option<MediaLinkRecord>, StoreError>;

    /// Stores (or replaces) the search entry of a segment.
    fn put_recording(&self, recording: &RecordingRecord) -> Result<(), StoreError>;
    /// The search entry of a segment.
    fn recording(
        &self,
        session: Uuid,
        sequence: i64,
    ) -> Result<Option<RecordingRecord>, StoreError>;
    /// Search entries matching a filter, by start time then session and sequence.
    fn recordings(&self, filter: &RecordingFilter) -> Result<Vec<RecordingRecord>, StoreError>;

    /// Audit records matching a query.
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;
}

impl<T: AccessStore + ?Sized> AccessStore for Box<T> {
    fn account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        (**self).account(name)
    }
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        (**self).accounts()
    }
    fn set_user_role(&self, name: &str, role: &str) -> Result<bool, StoreError> {
        (**self).set_user_role(name, role)
    }
    fn set_user_teams(&self, name: &str, teams: &[String]) -> Result<bool, StoreError> {
        (**self).set_user_teams(name, teams)
    }
    fn set_user_disabled(&self, name: &str, at: Option<i64>) -> Result<bool, StoreError> {
        (**self).set_user_disabled(name, at)
    }
    fn totp(&self, name: &str) -> Result<Option<TotpRecord>, StoreError> {
        (**self).totp(name)
    }
    fn set_totp(&self, name: &str, sealed_secret: Option<&str>) -> Result<bool, StoreError> {
        (**self).set_totp(name, sealed_secret)
    }
    fn use_totp_step(&self, name: &str, step: i64) -> Result<bool, StoreError> {
        (**self).use_totp_step(name, step)
    }
    fn end_sessions(&self, name: &str, keep: Option<&str>) -> Result<u64, StoreError> {
        (**self).end_sessions(name, keep)
    }
    fn set_password(
        &self,
        name: &str,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        (**self).set_password(name, password_hash, must_change, keep_session, now)
    }
    fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        (**self).insert_session(session)
    }
    fn session(&self, id_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        (**self).session(id_sha256)
    }
    fn touch_session(&self, id_sha256: &str, now: i64) -> Result<(), StoreError> {
        (**self).touch_session(id_sha256, now)
    }
    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        (**self).delete_session(id_sha256)
    }
    fn delete_expired_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        (**self).delete_expired_sessions(now, idle_before)
    }
    fn login_failure(&self, key: &str, now: i64, forget_before: i64) -> Result<i64, StoreError> {
        (**self).login_failure(key, now, forget_before)
    }
    fn lock_login(&self, key: &str, until: i64) -> Result<(), StoreError> {
        (**self).lock_login(key, until)
    }
    fn login_locked_until(&self, keys: &[String], now: i64) -> Result<Option<i64>, StoreError> {
        (**self).login_locked_until(keys, now)
    }
    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        (**self).clear_login_failures(key)
    }
    fn insert_api_token(&self, token: &ApiTokenRecord) -> Result<(), StoreError> {
        (**self).insert_api_token(token)
    }
    fn api_token(&self, token_sha256: &str) -> Result<Option<ApiTokenRecord>, StoreError> {
        (**self).api_token(token_sha256)
    }
    fn api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        (**self).api_tokens()
    }
    fn revoke_api_token(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        (**self).revoke_api_token(id, now)
    }
    fn insert_media_link(&self, link: &MediaLinkRecord, now: i64) -> Result<(), StoreError> {
        (**self).insert_media_link(link, now)
    }
    fn media_link(
        &self,
        link_sha256: &str,
        now: i64,
    ) -> Result<Option<MediaLinkRecord>, StoreError> {
        (**self).media_link(link_sha256, now)
    }
    fn put_recording(&self, recording: &RecordingRecord) -> Result<(), StoreError> {
        (**self).put_recording(recording)
    }
    fn recording(
        &self,
        session: Uuid,
        sequence: i64,
    ) -> Result<Option<RecordingRecord>, StoreError> {
        (**self).recording(session, sequence)
    }
    fn recordings(&self, filter: &RecordingFilter) -> Result<Vec<RecordingRecord>, StoreError> {
        (**self).recordings(filter)
    }
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        (**self).audit_query(query)
    }
}

/// Teams as stored: a JSON array (sorted, deduplicated).
pub(crate) fn teams_to_text(teams: &[String]) -> String {
    let mut t: Vec<&String> = teams.iter().collect();
    t.sort();
    t.dedup();
    serde_json::to_string(&t).unwrap_or_else(|_| "[]".into())
}

/// Teams from their stored text (empty or NULL: none).
pub(crate) fn teams_from_text(text: Option<&str>) -> Result<Vec<String>, StoreError> {
    match text.map(str::trim) {
        None | Some("") => Ok(Vec::new()),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| StoreError::Corrupt(format!("account teams: {e}")))
        }
    }
}
