//! Separation of duties (issue 13 §7): over the API, no one account can give an account the
//! power to hear recordings, destroy them, relax policy or manage accounts. Such a grant — an
//! account created with such a role, a role or team change that gives one, an account with
//! one enabled again — is only requested by the first person; it takes effect when a second
//! account with the `users` permission approves it. The requester, and the account the grant
//! is for, cannot approve it; a request lapses after seven days.
//!
//! Requests and approvals live in the audit log itself (`user.grant_requested`, whose
//! sequence number is the request's id, and `user.grant_approved`), so the log is the one
//! record of who asked and who agreed. The command line, run by whoever holds the data folder
//! and the vault key, is the break-glass path and grants at once (audited as `cli:`).

use serde::{Deserialize, Serialize};
use vigil_vault_store::metadata::{AuditRecord, MetadataStore, StoreError};

use crate::access::{Permission, Role};
use crate::accounts::{self, AccountError, Created, NewAccount};
use crate::audit;

/// Audit action: a grant was requested; the record's sequence number is the request's id.
pub const ACTION_GRANT_REQUESTED: &str = "user.grant_requested";
/// Audit action: a grant was approved (target `request:<id>`).
pub const ACTION_GRANT_APPROVED: &str = "user.grant_approved";
/// Audit action: a grant was rejected or withdrawn (target `request:<id>`).
pub const ACTION_GRANT_REJECTED: &str = "user.grant_rejected";
/// How long a request waits for its approval.
pub const REQUEST_LIFETIME: time::Duration = time::Duration::days(7);

/// Permissions only a second person can grant.
const GUARDED: [Permission; 6] = [
    Permission::Play,
    Permission::Download,
    Permission::Delete,
    Permission::Redact,
    Permission::Users,
    Permission::RelaxPolicy,
];

/// Whether granting `role` needs a second person.
pub fn is_guarded(role: Role) -> bool {
    GUARDED.iter().any(|p| role.can(*p))
}

/// What a request asks for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The account.
    pub name: String,
    /// The role it is to have (`None`: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The teams it is to have (`None`: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teams: Option<Vec<String>>,
    /// Enable it (a new account waits disabled for the approval).
    pub enable: bool,
    /// The account as it was when the grant was asked for: approving a grant for an account
    /// changed since (another role, other teams, disabled or enabled) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_of: Option<AccountState>,
}

/// What of an account a grant depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountState {
    /// Its role.
    pub role: String,
    /// Its teams (sorted).
    pub teams: Vec<String>,
    /// Whether it is disabled.
    pub disabled: bool,
}

fn state_of(store: &dyn MetadataStore, name: &str) -> Result<Option<AccountState>, StoreError> {
    Ok(store.account(name)?.map(|a| AccountState {
        role: a.user.role,
        teams: a.teams,
        disabled: a.disabled_at.is_some(),
    }))
}

/// A request waiting for its approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingGrant {
    /// Its id (the audit record's sequence number).
    pub id: i64,
    /// Who asked (`user:<name>`, …).
    pub requested_by: String,
    /// When (Unix seconds).
    pub requested_at: i64,
    /// What.
    pub grant: Grant,
}

/// Why a grant could not be requested or approved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// No request with this id.
    #[error("no grant request {0}")]
    NotFound(i64),
    /// The approver asked for it, or it is for the approver's own account.
    #[error("a grant needs a second person: its requester or its subject cannot approve it")]
    SelfApproval,
    /// Approved already, or lapsed.
    #[error("grant request {id} is {state}")]
    Closed {
        /// The request.
        id: i64,
        /// Approved or rejected already, older than 7 days, or for a changed account.
        state: &'static str,
    },
    /// The account operation failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates an account whose role is guarded disabled, and requests its enabling; returns the
/// account and the request's id.
pub fn request_new_account(
    store: &dyn MetadataStore,
    new: NewAccount,
    actor: &str,
) -> Result<(Created, i64), GrantError> {
    let name = new.name.clone();
    let created = accounts::add_user(store, new, actor)?;
    accounts::set_disabled(
        store,
        &name,
        true,
        actor,
        Some("awaiting a second person's approval"),
    )?;
    let id = request(
        store,
        actor,
        &Grant {
            name: name.clone(),
            role: None,
            teams: None,
            enable: true,
            asked_of: None,
        },
    )?;
    let account = store.account(&name)?.ok_or(AccountError::NotFound(name))?;
    Ok((
        Created {
            account,
            generated_password: created.generated_password,
        },
        id,
    ))
}

/// Records a request for `grant`; returns its id.
pub fn request(store: &dyn MetadataStore, actor: &str, grant: &Grant) -> Result<i64, GrantError> {
    let grant = Grant {
        asked_of: state_of(store, &grant.name)?,
        ..grant.clone()
    };
    let detail = serde_json::to_string(&grant).expect("a grant serializes");
    let record = audit::record(
        store,
        actor,
        ACTION_GRANT_REQUESTED,
        Some(grant.name.clone()),
        Some(detail),
    )?;
    Ok(record.seq)
}

/// What an approval did: the grant, and the account's new one-time password (for the
/// approver to hand over).
#[derive(Debug)]
pub struct Approved {
    /// The grant carried out.
    pub grant: Grant,
    /// The account's new one-time password.
    pub password: age::secrecy::SecretString,
}

/// Approves request `id` as `approver` (account `approver_name`) and carries it out. The account
/// then starts over — a new one-time password for the approver to hand over, its sessions
/// ended, its API tokens revoked, its second factor removed — so that the requester, who may
/// have set or seen its password, cannot use the power the second person granted.
pub fn approve(
    store: &dyn MetadataStore,
    id: i64,
    approver: &str,
    approver_name: &str,
    now: i64,
) -> Result<Approved, GrantError> {
    if id <= 0 {
        return Err(GrantError::NotFound(id));
    }
    let pending = pending(store, now)?;
    let Some(request) = pending.into_iter().find(|p| p.id == id) else {
        return Err(closed_or_missing(store, id, now)?);
    };
    if request.requested_by == approver || request.grant.name == approver_name {
        return Err(GrantError::SelfApproval);
    }
    let grant = request.grant;
    if grant.asked_of.is_some() && state_of(store, &grant.name)? != grant.asked_of {
        return Err(GrantError::Closed {
            id,
            state: "for an account changed since it was asked for",
        });
    }
    if let Some(role) = &grant.role {
        accounts::set_role(
            store,
            &grant.name,
            role.parse().map_err(AccountError::from)?,
            approver,
        )?;
    }
    if let Some(teams) = &grant.teams {
        accounts::set_teams(store, &grant.name, teams, approver)?;
    }
    if grant.enable {
        accounts::set_disabled(store, &grant.name, false, approver, Some("grant approved"))?;
    }
    let password = accounts::set_password(store, &grant.name, None, approver)?
        .ok_or_else(|| AccountError::NotFound(grant.name.clone()))?;
    if store.totp(&grant.name)?.is_some() {
        crate::mfa::reset(store, &grant.name, approver, "a guarded grant was approved")
            .map_err(|e| AccountError::Hash(e.to_string()))?;
    }
    audit::record(
        store,
        approver,
        ACTION_GRANT_APPROVED,
        Some(format!("request:{id}")),
        Some(format!(
            "requested by {} for {}",
            request.requested_by, grant.name
        )),
    )?;
    Ok(Approved { grant, password })
}

/// Rejects request `id` (the second person says no, or the requester withdraws it), audited
/// with the reason.
pub fn reject(
    store: &dyn MetadataStore,
    id: i64,
    actor: &str,
    reason: Option<&str>,
    now: i64,
) -> Result<Grant, GrantError> {
    let pending = pending(store, now)?;
    let Some(request) = pending.into_iter().find(|p| p.id == id) else {
        return Err(closed_or_missing(store, id, now)?);
    };
    audit::record(
        store,
        actor,
        ACTION_GRANT_REJECTED,
        Some(format!("request:{id}")),
        audit::stated_reason(reason),
    )?;
    Ok(request.grant)
}

/// Why request `id` is not pending.
fn closed_or_missing(
    store: &dyn MetadataStore,
    id: i64,
    now: i64,
) -> Result<GrantError, StoreError> {
    let Some(record) = store
        .audit_records(id - 1, 1)?
        .into_iter()
        .find(|r| r.seq == id)
    else {
        return Ok(GrantError::NotFound(id));
    };
    if record.draft.action != ACTION_GRANT_REQUESTED {
        return Ok(GrantError::NotFound(id));
    }
    let state = if record.draft.at < now - REQUEST_LIFETIME.whole_seconds() {
        "older than 7 days"
    } else {
        "approved or rejected already"
    };
    Ok(GrantError::Closed { id, state })
}

/// Requests of the last seven days not approved yet, oldest first.
pub fn pending(store: &dyn MetadataStore, now: i64) -> Result<Vec<PendingGrant>, GrantError> {
    let since = now - REQUEST_LIFETIME.whole_seconds();
    let mut open: Vec<PendingGrant> = Vec::new();
    let mut after = first_seq_since(store, since)?;
    loop {
        let page = store.audit_records(after, 1000)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for record in &page {
            note(&mut open, record, since);
        }
    }
    Ok(open)
}

fn note(open: &mut Vec<PendingGrant>, record: &AuditRecord, since: i64) {
    let d = &record.draft;
    if d.action == ACTION_GRANT_REQUESTED && d.at >= since {
        if let Some(grant) = d
            .reason
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
        {
            open.push(PendingGrant {
                id: record.seq,
                requested_by: d.actor.clone(),
                requested_at: d.at,
                grant,
            });
        }
    } else if d.action == ACTION_GRANT_APPROVED || d.action == ACTION_GRANT_REJECTED {
        let id = d.target.as_deref().and_then(|t| t.strip_prefix("request:"));
        if let Some(id) = id.and_then(|id| id.parse::<i64>().ok()) {
            open.retain(|p| p.id != id);
        }
    }
}

/// The sequence number after which the records since `since` begin (records are appended in
/// time order), found without reading a long log from its start.
fn first_seq_since(store: &dyn MetadataStore, since: i64) -> Result<i64, StoreError> {
    audit::last_seq_where(store, |r| r.draft.at < since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_with_media_account_or_policy_powers_are_guarded() {
        let guarded: Vec<&str> = Role::ALL
            .into_iter()
            .filter(|r| is_guarded(*r))
            .map(Role::as_str)
            .collect();
        assert_eq!(guarded, ["supervisor", "qa_analyst", "compliance", "admin"]);
    }
}
