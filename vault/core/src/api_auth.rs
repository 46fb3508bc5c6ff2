//! Who is calling the operator API: console sessions (a cookie, with a CSRF token for requests
//! that change something), API tokens (`Authorization: Bearer`), and HTTP Basic (name and
//! password on each request, for scripts and the first admin). Password guesses are throttled
//! per account and per client address, for logins and Basic alike.
//!
//! Sessions and API tokens are stored only as SHA-256 hashes of their secrets, in the metadata
//! store, so every vault instance sharing a PostgreSQL database knows them; so are the
//! throttle's failure counts and locks.

use std::net::IpAddr;
use std::time::Duration;

use age::secrecy::{ExposeSecret, SecretString};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::access::{AuthMethod, Principal, Role};
use crate::audit;
use crate::credentials::{dummy_password_hash, password_matches, random_secret, secret_hash};
use vigil_vault_store::metadata::{Account, MetadataStore, SessionRecord, StoreError};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "__Host-vigil_session";
/// The header that carries the CSRF token on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without use (PCI DSS 8.2.8).
pub const SESSION_IDLE_SECS: i64 = 15 * 60;
/// A session ends this long after login, used or not.
pub const SESSION_ABSOLUTE_SECS: i64 = 12 * 3600;
/// Audit action: a successful console login.
pub const ACTION_LOGIN_SUCCESS: &str = "login.success";
/// Audit action: a refused password (login or Basic).
pub const ACTION_LOGIN_FAILURE: &str = "login.failure";
/// Audit action: a console logout.
pub const ACTION_LOGOUT: &str = "logout";

/// Password attempts on one account before it is locked (PCI DSS 8.3.4: at most 10).
pub const ACCOUNT_FREE_FAILURES: u32 = 5;
/// How long a locked account stays locked (PCI DSS 8.3.4: at least 30 minutes).
pub const ACCOUNT_LOCK: Duration = Duration::from_secs(30 * 60);
/// Failures from one address before it is locked.
const ADDRESS_FREE_FAILURES: u32 = 20;
/// An address's first lockout; each further failure doubles it, up to [`MAX_LOCK`].
const FIRST_LOCK: Duration = Duration::from_secs(30);
const MAX_LOCK: Duration = Duration::from_secs(3600);
/// Failures are forgotten after this long without another.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why a request was not authenticated or not allowed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or malformed credentials.
    #[error("authentication required")]
    Missing,
    /// Unknown or disabled account, wrong password, unknown/expired/revoked session or token.
    #[error("invalid credentials")]
    Invalid,
    /// The account's role may not do this.
    #[error("the account's role may not do this")]
    Forbidden,
    /// A session-authenticated request that changes something lacks the right CSRF token.
    #[error("missing or wrong X-CSRF-Token")]
    Csrf,
    /// The account needs a one-time code to log in, and none came.
    #[error("a one-time code from the authenticator app is required")]
    CodeRequired,
    /// The account needs a second factor, which Basic cannot carry.
    #[error("this account needs a second factor: log in to the console, or use an API token")]
    SecondFactorRequired,
    /// Too many failed attempts: try again after this many seconds.
    #[error("too many failed attempts; retry in {0} s")]
    Throttled(u64),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counts failed password attempts per account and per address in the metadata store (so
/// every instance sharing it sees them), and locks a key out for a growing time past its
/// threshold.
#[derive(Debug, Default)]
pub struct Throttle {
    _private: (),
}

fn lock_time(excess: u32) -> Duration {
    FIRST_LOCK
        .saturating_mul(1u32 << excess.min(10))
        .min(MAX_LOCK)
}

/// An attempt the throttle let through: the account's attempts so far, this one included.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    attempts: u32,
}

impl Throttle {
    /// Lets a password attempt through, or not. Every attempt on an account counts before its
    /// password is checked (atomically in the store), so parallel guesses cannot all pass a
    /// check made before any of them failed: at most [`ACCOUNT_FREE_FAILURES`] are checked,
    /// the rest are refused and lock the account for [`ACCOUNT_LOCK`].
    pub fn admit(
        &self,
        store: &dyn MetadataStore,
        account: &str,
        addr: Option<IpAddr>,
    ) -> Result<Admission, AuthError> {
        self.check(store, account, addr)?;
        let now = crate::clock::now().unix_timestamp();
        let forget_before = now - FORGET_AFTER.as_secs() as i64;
        let key = Self::account_key(account);
        let attempts = store.login_failure(&key, now, forget_before)?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts > ACCOUNT_FREE_FAILURES {
            store.lock_login(&key, now + ACCOUNT_LOCK.as_secs() as i64)?;
            return Err(AuthError::Throttled(ACCOUNT_LOCK.as_secs()));
        }
        Ok(Admission { attempts })
    }

    fn account_key(account: &str) -> String {
        format!("account:{account}")
    }

    fn address_key(addr: IpAddr) -> String {
        format!("addr:{addr}")
    }

    fn keys(account: &str, addr: Option<IpAddr>) -> Vec<String> {
        let mut keys = vec![Self::account_key(account)];
        keys.extend(addr.map(Self::address_key));
        keys
    }

    /// [`AuthError::Throttled`] while the account or the address is locked out.
    pub fn check(
        &self,
        store: &dyn MetadataStore,
        account: &str,
        addr: Option<IpAddr>,
    ) -> Result<(), AuthError> {
        let now = crate::clock::now().unix_timestamp();
        match store.login_locked_until(&Self::keys(account, addr), now)? {
            Some(until) => Err(AuthError::Throttled((until - now).max(1) as u64)),
            None => Ok(()),
        }
    }

    /// Counts a failed attempt: the account's was counted on admission (it locks when that was
    /// its last free one); the address's is counted here, locking past its threshold.
    pub fn fail(
        &self,
        store: &dyn MetadataStore,
        account: &str,
        addr: Option<IpAddr>,
        admission: Admission,
    ) -> Result<(), StoreError> {
        let now = crate::clock::now().unix_timestamp();
        if admission.attempts >= ACCOUNT_FREE_FAILURES {
            store.lock_login(
                &Self::account_key(account),
                now + ACCOUNT_LOCK.as_secs() as i64,
            )?;
        }
        if let Some(addr) = addr {
            let key = Self::address_key(addr);
            let forget_before = now - FORGET_AFTER.as_secs() as i64;
            let count = store.login_failure(&key, now, forget_before)?;
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            if count >= ADDRESS_FREE_FAILURES {
                let until = now + lock_time(count - ADDRESS_FREE_FAILURES).as_secs() as i64;
                store.lock_login(&key, until)?;
            }
        }
        Ok(())
    }

    /// Forgets an account's failures after a correct password.
    pub fn succeed(&self, store: &dyn MetadataStore, account: &str) -> Result<(), StoreError> {
        store.clear_login_failures(&Self::account_key(account))
    }
}

fn principal(
    account: Account,
    via: AuthMethod,
    session: Option<String>,
) -> Result<Principal, AuthError> {
    if account.disabled_at.is_some() {
        return Err(AuthError::Invalid);
    }
    let role: Role = account
        .user
        .role
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("role of {}", account.user.name)))?;
    Ok(Principal {
        name: account.user.name,
        role,
        teams: account.teams,
        via,
        session_sha256: session,
        must_change_password: account.user.must_change_password,
    })
}

/// Checks a name and password (throttled). A failure is audited as `login.failure` with the
/// name tried and the client address; never the password.
pub fn check_password(
    store: &dyn MetadataStore,
    throttle: &Throttle,
    name: &str,
    password: &str,
    addr: Option<IpAddr>,
    via: AuthMethod,
) -> Result<Principal, AuthError> {
    check_password_with(store, throttle, name, password, addr, via, |_| {
        Ok(SecondFactor::Passed)
    })
}

/// What a login's second-factor check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// Not needed, or the code was right.
    Passed,
    /// Needed and the code was wrong: a failed attempt like a wrong password.
    Failed,
}

/// [`check_password`], then `second` (the one-time code) before the attempt counts as a
/// success: a right password with a wrong code is a failed attempt, so codes cannot be
/// guessed faster than passwords.
pub fn check_password_with(
    store: &dyn MetadataStore,
    throttle: &Throttle,
    name: &str,
    password: &str,
    addr: Option<IpAddr>,
    via: AuthMethod,
    second: impl FnOnce(&Principal) -> Result<SecondFactor, AuthError>,
) -> Result<Principal, AuthError> {
    let admission = throttle.admit(store, name, addr)?;
    let account = store.account(name)?;
    let hash = account
        .as_ref()
        .map_or(dummy_password_hash(), |a| a.user.password_hash.as_str());
    let verified = password_matches(password, hash).unwrap_or(false);
    let found = account.filter(|a| verified && a.disabled_at.is_none());
    let failed = |what: String| -> Result<AuthError, AuthError> {
        throttle.fail(store, name, addr, admission)?;
        let actor = addr.map_or("anonymous".to_owned(), |a| format!("addr:{a}"));
        let tried = audit::printable(name, 64);
        audit::record(
            store,
            &actor,
            ACTION_LOGIN_FAILURE,
            Some(tried.clone()),
            Some(what),
        )?;
        tracing::warn!(account = %tried, "login attempt refused");
        Ok(AuthError::Invalid)
    };
    let Some(account) = found else {
        return Err(failed(format!("via {}", via.as_str()))?);
    };
    let principal = principal(account, via, None)?;
    if second(&principal)? == SecondFactor::Failed {
        return Err(failed(format!(
            "via {}: wrong one-time code",
            via.as_str()
        ))?);
    }
    throttle.succeed(store, name)?;
    Ok(principal)
}

/// A new console session: the cookie value and the CSRF token are shown once.
#[derive(Debug)]
pub struct NewSession {
    /// Who logged in.
    pub principal: Principal,
    /// The `__Host-vigil_session` cookie's value.
    pub cookie: SecretString,
    /// The CSRF token for `X-CSRF-Token`.
    pub csrf: String,
    /// Absolute expiry, Unix seconds.
    pub expires_at: i64,
    /// The account must change its password.
    pub must_change_password: bool,
}

/// Logs in: checks the password and `second` (the one-time code; throttled together), stores
/// a new session, audits `login.success`.
pub fn login(
    store: &dyn MetadataStore,
    throttle: &Throttle,
    name: &str,
    password: &str,
    addr: Option<IpAddr>,
    second: impl FnOnce(&Principal) -> Result<SecondFactor, AuthError>,
) -> Result<NewSession, AuthError> {
    let mut principal = check_password_with(
        store,
        throttle,
        name,
        password,
        addr,
        AuthMethod::Session,
        second,
    )?;
    let cookie = random_secret(32);
    let csrf = random_secret(32);
    let now = crate::clock::now().unix_timestamp();
    let record = SessionRecord {
        id_sha256: secret_hash(&cookie),
        csrf_sha256: secret_hash(&csrf),
        user_name: principal.name.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + SESSION_ABSOLUTE_SECS,
    };
    store.insert_session(&record)?;
    store.delete_expired_sessions(now, now - SESSION_IDLE_SECS)?;
    audit::record(
        store,
        &principal.actor(),
        ACTION_LOGIN_SUCCESS,
        Some(principal.name.clone()),
        addr.map(|a| format!("from {a}")),
    )?;
    principal.session_sha256 = Some(record.id_sha256);
    let must_change_password = store.user(name)?.is_some_and(|u| u.must_change_password);
    Ok(NewSession {
        principal,
        cookie: SecretString::from(cookie),
        csrf,
        expires_at: record.expires_at,
        must_change_password,
    })
}

/// Why a password change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasswordError {
    /// The current password is wrong (or the caller is throttled).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The new password is refused, or the store failed.
    #[error(transparent)]
    Account(#[from] crate::accounts::AccountError),
}

/// Changes the caller's own password after checking the current one (throttled like a
/// login). Clears the must-change flag, ends the account's other sessions and revokes its API
/// tokens. Audited as `user.change_password`.
pub fn change_password(
    store: &dyn MetadataStore,
    throttle: &Throttle,
    principal: &Principal,
    current: &str,
    new: &str,
    addr: Option<IpAddr>,
) -> Result<(), ChangePasswordError> {
    check_password(
        store,
        throttle,
        &principal.name,
        current,
        addr,
        principal.via,
    )?;
    let hash = crate::accounts::new_password_hash(&principal.name, new)?;
    if !store
        .set_password(
            &principal.name,
            &hash,
            false,
            principal.session_sha256.as_deref(),
            crate::clock::now().unix_timestamp(),
        )
        .map_err(AuthError::Store)?
    {
        return Err(AuthError::Invalid.into());
    }
    audit::record(
        store,
        &principal.actor(),
        crate::accounts::ACTION_USER_CHANGE_PASSWORD,
        Some(principal.name.clone()),
        None,
    )
    .map_err(AuthError::Store)?;
    Ok(())
}

/// Ends a session, audited as `logout`.
pub fn logout(store: &dyn MetadataStore, principal: &Principal) -> Result<(), AuthError> {
    if let Some(id) = &principal.session_sha256 {
        store.delete_session(id)?;
    }
    audit::record(
        store,
        &principal.actor(),
        ACTION_LOGOUT,
        Some(principal.name.clone()),
        None,
    )?;
    Ok(())
}

/// What a request offers as credentials.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    /// The `__Host-vigil_session` cookie's value.
    pub session: Option<&'a str>,
    /// The `X-CSRF-Token` header.
    pub csrf: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The request changes something (POST, PUT, PATCH, DELETE): a session needs the CSRF token.
    pub unsafe_method: bool,
    /// The client's address.
    pub addr: Option<IpAddr>,
    /// Accounts need a second factor (`[accounts] mfa_required`): Basic, which cannot carry a
    /// code, is refused to those whose role needs one.
    pub mfa_required: bool,
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn by_session(
    store: &dyn MetadataStore,
    cookie: &str,
    creds: &Credentials<'_>,
) -> Result<Principal, AuthError> {
    let id = secret_hash(cookie);
    let session = store.session(&id)?.ok_or(AuthError::Invalid)?;
    let now = crate::clock::now().unix_timestamp();
    if now >= session.expires_at || now - session.last_seen_at >= SESSION_IDLE_SECS {
        store.delete_session(&id)?;
        return Err(AuthError::Invalid);
    }
    if creds.unsafe_method && creds.csrf.map(secret_hash).as_deref() != Some(&session.csrf_sha256) {
        return Err(AuthError::Csrf);
    }
    if now - session.last_seen_at >= 60 {
        store.touch_session(&id, now)?;
    }
    let account = store
        .account(&session.user_name)?
        .ok_or(AuthError::Invalid)?;
    principal(account, AuthMethod::Session, Some(id))
}

fn by_token(store: &dyn MetadataStore, token: &str) -> Result<Principal, AuthError> {
    let record = store
        .api_token(&secret_hash(token))?
        .ok_or(AuthError::Invalid)?;
    let now = crate::clock::now().unix_timestamp();
    if record.revoked_at.is_some() || record.expires_at.is_some_and(|e| now >= e) {
        return Err(AuthError::Invalid);
    }
    let account = store
        .account(&record.user_name)?
        .ok_or(AuthError::Invalid)?;
    principal(account, AuthMethod::ApiToken, None)
}

/// Resolves the caller: the session cookie first, then a Bearer API token, then Basic.
/// `Ok(None)`: no credentials at all.
pub fn authenticate(
    store: &dyn MetadataStore,
    throttle: &Throttle,
    creds: &Credentials<'_>,
) -> Result<Option<Principal>, AuthError> {
    if let Some(cookie) = creds.session.filter(|c| !c.is_empty()) {
        match by_session(store, cookie, creds) {
            // A stale cookie next to other credentials does not hide them.
            Err(AuthError::Invalid) if creds.authorization.is_some() => {}
            other => return other.map(Some),
        }
    }
    let Some(authorization) = creds.authorization else {
        return Ok(None);
    };
    if let Some(token) = authorization.strip_prefix("Bearer ") {
        return by_token(store, token.trim()).map(Some);
    }
    let encoded = authorization
        .strip_prefix("Basic ")
        .ok_or(AuthError::Missing)?;
    let decoded = B64
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(AuthError::Missing)?;
    let (name, password) = decoded.split_once(':').ok_or(AuthError::Missing)?;
    let password = SecretString::from(password.to_owned());
    // Refused before the attempt counts as a success: a right password must not clear the
    // account's failures (wrong one-time codes at login) when it cannot open the account.
    let mfa_required = creds.mfa_required;
    check_password_with(
        store,
        throttle,
        name,
        password.expose_secret(),
        creds.addr,
        AuthMethod::Basic,
        |p| {
            if mfa_required && crate::mfa::required_for(p.role) {
                Err(AuthError::SecondFactorRequired)
            } else {
                Ok(SecondFactor::Passed)
            }
        },
    )
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockouts_grow_and_cap() {
        assert_eq!(lock_time(0), FIRST_LOCK);
        assert_eq!(lock_time(1), FIRST_LOCK * 2);
        assert_eq!(lock_time(30), MAX_LOCK);
    }

    #[test]
    fn the_throttle_locks_an_account_after_five_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            vigil_vault_store::metadata::SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        let t = Throttle::default();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..ACCOUNT_FREE_FAILURES - 1 {
            let admitted = t.admit(&store, "alice", Some(addr)).unwrap();
            t.fail(&store, "alice", Some(addr), admitted).unwrap();
            assert!(t.check(&store, "alice", Some(addr)).is_ok());
        }
        let last = t.admit(&store, "alice", Some(addr)).unwrap();
        t.fail(&store, "alice", Some(addr), last).unwrap();
        assert!(matches!(
            t.check(&store, "alice", None),
            Err(AuthError::Throttled(s)) if (1799..=1800).contains(&s)
        ));
        assert!(t.admit(&store, "alice", None).is_err());
        // Another account from the same address is not locked yet.
        assert!(t.check(&store, "bob", Some(addr)).is_ok());
        // A success forgets the account's attempts.
        for _ in 0..3 * ACCOUNT_FREE_FAILURES {
            t.admit(&store, "carol", None).unwrap();
            t.succeed(&store, "carol").unwrap();
        }
    }

    /// Sessions end after the idle time and at their absolute expiry, and a disabled account's
    /// API token stops working.
    #[test]
    fn sessions_expire_and_disabled_accounts_lose_their_tokens() {
        use vigil_vault_store::metadata::{AccessStore, MetadataStore, SqliteStore, UserRecord};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("m.sqlite")).unwrap();
        store
            .create_user(&UserRecord {
                name: "ann".into(),
                role: "qa_analyst".into(),
                password_hash: crate::credentials::hash_password("a long password").unwrap(),
                must_change_password: false,
            })
            .unwrap();
        let throttle = Throttle::default();
        let now = crate::clock::now().unix_timestamp();
        let session = |cookie: &str, last_seen_at: i64, expires_at: i64| {
            store
                .insert_session(&SessionRecord {
                    id_sha256: secret_hash(cookie),
                    csrf_sha256: secret_hash("csrf"),
                    user_name: "ann".into(),
                    created_at: now - 100,
                    last_seen_at,
                    expires_at,
                })
                .unwrap();
        };
        session("fresh", now - 10, now + 100);
        session("idle", now - SESSION_IDLE_SECS - 1, now + 100);
        session("old", now - 10, now - 1);
        let with = |cookie: &str, csrf: Option<&str>, unsafe_method: bool| {
            authenticate(
                &store,
                &throttle,
                &Credentials {
                    session: Some(cookie),
                    csrf,
                    unsafe_method,
                    ..Default::default()
                },
            )
        };
        let p = with("fresh", None, false).unwrap().unwrap();
        assert_eq!((p.name.as_str(), p.role), ("ann", Role::QaAnalyst));
        assert_eq!(p.via, AuthMethod::Session);
        assert!(matches!(with("fresh", None, true), Err(AuthError::Csrf)));
        assert!(matches!(
            with("fresh", Some("x"), true),
            Err(AuthError::Csrf)
        ));
        assert!(with("fresh", Some("csrf"), true).unwrap().is_some());
        for dead in ["idle", "old", "unknown"] {
            assert!(
                matches!(with(dead, None, false), Err(AuthError::Invalid)),
                "{dead}"
            );
        }
        assert_eq!(store.session(&secret_hash("idle")).unwrap(), None);

        let token = crate::accounts::create_api_token(&store, "ann", Some(1), "cli:test").unwrap();
        let bearer = format!("Bearer {}", token.token.expose_secret());
        let by_token = || {
            authenticate(
                &store,
                &throttle,
                &Credentials {
                    authorization: Some(&bearer),
                    ..Default::default()
                },
            )
        };
        assert_eq!(by_token().unwrap().unwrap().via, AuthMethod::ApiToken);
        crate::accounts::set_disabled(&store, "ann", true, "cli:test", None).unwrap();
        assert!(matches!(by_token(), Err(AuthError::Invalid)));
        assert!(matches!(
            with("fresh", None, false),
            Err(AuthError::Invalid)
        ));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; __Host-vigil_session=abc ; b=2";
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie_value(h, "c"), None);
    }
}
