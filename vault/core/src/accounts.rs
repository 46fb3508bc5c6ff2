//! Console accounts and API tokens: adding, listing, changing role or teams, disabling, and
//! the tokens that automation uses instead of a password. Every change is audited.
//!
//! Used by the command line (`vigil-vault user …`) and by `GET/POST /v1/users`.

use age::secrecy::SecretString;
use uuid::Uuid;

use crate::access::{Role, UnknownRole};
use crate::audit;
use crate::credentials::{random_secret, secret_hash};
use vigil_vault_store::metadata::{Account, ApiTokenRecord, MetadataStore, StoreError, UserRecord};

/// Audit action: an account was created.
pub const ACTION_USER_CREATE: &str = "user.create";
/// Audit action: an account's role changed.
pub const ACTION_USER_SET_ROLE: &str = "user.set_role";
/// Audit action: an account's teams changed.
pub const ACTION_USER_SET_TEAMS: &str = "user.set_teams";
/// Audit action: an account was disabled.
pub const ACTION_USER_DISABLE: &str = "user.disable";
/// Audit action: an account was enabled again.
pub const ACTION_USER_ENABLE: &str = "user.enable";
/// Audit action: an account's password was set by someone else (it must be changed at login).
pub const ACTION_USER_SET_PASSWORD: &str = "user.set_password";
/// Audit action: an account changed its own password.
pub const ACTION_USER_CHANGE_PASSWORD: &str = "user.change_password";
/// Audit action: an API token was created.
pub const ACTION_API_TOKEN_CREATE: &str = "api_token.create";
/// Audit action: an API token was revoked.
pub const ACTION_API_TOKEN_REVOKE: &str = "api_token.revoke";

/// The shortest password accepted for a new account.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name is empty, too long, or has characters other than letters, digits, `.`, `-`, `_`, `@`.
    #[error("account names are 1 to 64 letters, digits, '.', '-', '_' or '@'")]
    BadName,
    /// The role is unknown.
    #[error(transparent)]
    Role(#[from] UnknownRole),
    /// A team name is empty or too long.
    #[error("team names are 1 to 128 printable characters")]
    BadTeam,
    /// The password is too short.
    #[error("passwords have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The password is long enough but easy to guess: a common password, a keyboard walk, a
    /// repeated pattern, the account's own name (zxcvbn's dictionaries and rules).
    #[error("this password is too easy to guess{0}")]
    GuessablePassword(String),
    /// The name is taken.
    #[error("account {0:?} exists")]
    Exists(String),
    /// No such account.
    #[error("no account {0:?}")]
    NotFound(String),
    /// No such API token.
    #[error("no API token {0}")]
    TokenNotFound(Uuid),
    /// The lifetime is out of range.
    #[error("API token lifetime must be 1 to 3660 days")]
    BadLifetime,
    /// The password could not be hashed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new account to create.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Teams (a supervisor's scope).
    pub teams: Vec<String>,
    /// The password; `None`: one is generated and returned once.
    pub password: Option<SecretString>,
}

/// The result of creating an account.
#[derive(Debug)]
pub struct Created {
    /// The account.
    pub account: Account,
    /// The generated password, when none was given (shown once).
    pub generated_password: Option<SecretString>,
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'));
    ok.then_some(()).ok_or(AccountError::BadName)
}

fn check_teams(teams: &[String]) -> Result<(), AccountError> {
    let ok = teams
        .iter()
        .all(|t| !t.trim().is_empty() && t.len() <= 128 && !t.chars().any(char::is_control));
    ok.then_some(()).ok_or(AccountError::BadTeam)
}

/// Creates an account, audited as `user.create` (target: the name; the role and teams in the
/// reason field's place are not secrets, so they go into the target).
pub fn add_user(
    store: &dyn MetadataStore,
    new: NewAccount,
    actor: &str,
) -> Result<Created, AccountError> {
    use age::secrecy::ExposeSecret;
    check_name(&new.name)?;
    check_teams(&new.teams)?;
    let (password, generated) = match new.password {
        Some(p) => (p, false),
        None => (SecretString::from(random_secret(15)), true),
    };
    if store.user(&new.name)?.is_some() {
        return Err(AccountError::Exists(new.name));
    }
    let hash = new_password_hash(&new.name, password.expose_secret())?;
    store.create_user(&UserRecord {
        name: new.name.clone(),
        role: new.role.as_str().into(),
        password_hash: hash,
        must_change_password: generated,
    })?;
    store.set_user_teams(&new.name, &new.teams)?;
    audit::record(
        store,
        actor,
        ACTION_USER_CREATE,
        Some(format!(
            "{} role={} teams={}",
            new.name,
            new.role,
            new.teams.join(",")
        )),
        None,
    )?;
    let account = store
        .account(&new.name)?
        .ok_or_else(|| AccountError::NotFound(new.name.clone()))?;
    Ok(Created {
        account,
        generated_password: generated.then_some(password),
    })
}

/// Every account, by name.
pub fn list_users(store: &dyn MetadataStore) -> Result<Vec<Account>, AccountError> {
    Ok(store.accounts()?)
}

/// Changes an account's role. Audited.
pub fn set_role(
    store: &dyn MetadataStore,
    name: &str,
    role: Role,
    actor: &str,
) -> Result<(), AccountError> {
    if !store.set_user_role(name, role.as_str())? {
        return Err(AccountError::NotFound(name.into()));
    }
    audit::record(
        store,
        actor,
        ACTION_USER_SET_ROLE,
        Some(format!("{name} role={role}")),
        None,
    )?;
    Ok(())
}

/// Replaces an account's teams. Audited.
pub fn set_teams(
    store: &dyn MetadataStore,
    name: &str,
    teams: &[String],
    actor: &str,
) -> Result<(), AccountError> {
    check_teams(teams)?;
    if !store.set_user_teams(name, teams)? {
        return Err(AccountError::NotFound(name.into()));
    }
    audit::record(
        store,
        actor,
        ACTION_USER_SET_TEAMS,
        Some(format!("{name} teams={}", teams.join(","))),
        None,
    )?;
    Ok(())
}

/// Disables (ending its sessions; its API tokens stop working) or enables an account. Audited.
pub fn set_disabled(
    store: &dyn MetadataStore,
    name: &str,
    disabled: bool,
    actor: &str,
    reason: Option<&str>,
) -> Result<(), AccountError> {
    let at = disabled.then(|| crate::clock::now().unix_timestamp());
    if !store.set_user_disabled(name, at)? {
        return Err(AccountError::NotFound(name.into()));
    }
    let action = if disabled {
        ACTION_USER_DISABLE
    } else {
        ACTION_USER_ENABLE
    };
    audit::record(
        store,
        actor,
        action,
        Some(name.into()),
        audit::stated_reason(reason),
    )?;
    Ok(())
}

/// Checks a new password of account `name` and hashes it: at least [`MIN_PASSWORD_CHARS`]
/// characters (PCI DSS 8.3.6) and not guessable in fewer than 10^8 tries by zxcvbn (score 3), whose
/// packaged lists hold the common and breached passwords, names and words it knows (ASVS
/// 2.1.7), with the account's name among the words.
pub(crate) fn new_password_hash(name: &str, password: &str) -> Result<String, AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::WeakPassword);
    }
    let estimate = zxcvbn::zxcvbn(password, &[name, "vigil"]);
    if estimate.score() < zxcvbn::Score::Three {
        let why = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map_or_else(String::new, |w| format!(": {w}"));
        return Err(AccountError::GuessablePassword(why));
    }
    crate::credentials::hash_password(password).map_err(|e| AccountError::Hash(e.to_string()))
}

/// Sets an account's password for it (a reset): the given one, or a generated one that is
/// returned once. The account must change it at its next login. Audited.
pub fn set_password(
    store: &dyn MetadataStore,
    name: &str,
    password: Option<SecretString>,
    actor: &str,
) -> Result<Option<SecretString>, AccountError> {
    use age::secrecy::ExposeSecret;
    let (password, generated) = match password {
        Some(p) => (p, false),
        None => (SecretString::from(random_secret(15)), true),
    };
    let hash = new_password_hash(name, password.expose_secret())?;
    // A reset ends the account's sessions and revokes its API tokens.
    let now = crate::clock::now().unix_timestamp();
    if !store.set_password(name, &hash, true, None, now)? {
        return Err(AccountError::NotFound(name.into()));
    }
    audit::record(
        store,
        actor,
        ACTION_USER_SET_PASSWORD,
        Some(name.into()),
        None,
    )?;
    Ok(generated.then_some(password))
}

/// A new API token: the text is shown once and stored only as a hash.
#[derive(Debug)]
pub struct CreatedApiToken {
    /// Its id (for revoking).
    pub id: Uuid,
    /// The token (`vat_…`), for `Authorization: Bearer`.
    pub token: SecretString,
    /// Expiry, Unix seconds.
    pub expires_at: Option<i64>,
}

/// Creates an API token acting as account `name`, valid `expires_days` days (none: until
/// revoked). Audited as `api_token.create` (target: the account and the token's id).
pub fn create_api_token(
    store: &dyn MetadataStore,
    name: &str,
    expires_days: Option<u32>,
    actor: &str,
) -> Result<CreatedApiToken, AccountError> {
    if expires_days.is_some_and(|d| d == 0 || d > 3660) {
        return Err(AccountError::BadLifetime);
    }
    if store.account(name)?.is_none() {
        return Err(AccountError::NotFound(name.into()));
    }
    let now = crate::clock::now().unix_timestamp();
    let token = format!("vat_{}", random_secret(32));
    let record = ApiTokenRecord {
        id: Uuid::new_v4(),
        token_sha256: secret_hash(&token),
        user_name: name.into(),
        created_at: now,
        expires_at: expires_days.map(|d| now + i64::from(d) * 86_400),
        revoked_at: None,
    };
    store.insert_api_token(&record)?;
    audit::record(
        store,
        actor,
        ACTION_API_TOKEN_CREATE,
        Some(format!("{name} token={}", record.id)),
        None,
    )?;
    Ok(CreatedApiToken {
        id: record.id,
        token: SecretString::from(token),
        expires_at: record.expires_at,
    })
}

/// Revokes an API token. Audited.
pub fn revoke_api_token(
    store: &dyn MetadataStore,
    id: Uuid,
    actor: &str,
) -> Result<(), AccountError> {
    if !store.revoke_api_token(id, crate::clock::now().unix_timestamp())? {
        return Err(AccountError::TokenNotFound(id));
    }
    audit::record(
        store,
        actor,
        ACTION_API_TOKEN_REVOKE,
        Some(id.to_string()),
        None,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_but_guessable_passwords_are_refused_and_passphrases_pass() {
        for weak in [
            "Password12345",
            "123456789012",
            "qwertyuiop123",
            "alice12345678",
            "vigilvigil123",
        ] {
            let Err(err) = new_password_hash("alice", weak) else {
                panic!("{weak} was accepted");
            };
            assert!(
                matches!(err, AccountError::GuessablePassword(_)),
                "{weak}: {err}"
            );
        }
        assert!(matches!(
            new_password_hash("alice", "short"),
            Err(AccountError::WeakPassword)
        ));
        for strong in [
            "correct horse battery staple",
            "the admin's own long password",
        ] {
            new_password_hash("alice", strong).unwrap();
        }
    }

    #[test]
    fn names_and_teams_are_checked() {
        assert!(check_name("alice.smith@corp").is_ok());
        for bad in ["", "a b", "x:y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_teams(&["north".into()]).is_ok());
        assert!(check_teams(&[" ".into()]).is_err());
    }
}
