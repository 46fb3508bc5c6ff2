//! Accounts: `GET /v1/users`, `POST /v1/users`, `PATCH /v1/users/{name}`, and the second
//! person's part of a guarded grant: `GET /v1/grants`,
//! `POST /v1/grants/{id}/approve` (see `vigil_vault_core::grants`).

use age::secrecy::{ExposeSecret, SecretString};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vigil_vault_core::access::{Permission, Principal, Role};
use vigil_vault_core::accounts::{self, AccountError, NewAccount};
use vigil_vault_core::grants::{self, Grant, GrantError, PendingGrant};
use vigil_vault_store::metadata::Account;

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::ApiJson;

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "exists", e.to_string()),
            AccountError::NotFound(_) | AccountError::TokenNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            AccountError::WeakPassword | AccountError::GuessablePassword(_) => {
                ApiError::bad_request("weak_password", e.to_string())
            }
            AccountError::Role(_) => ApiError::bad_request("bad_role", e.to_string()),
            AccountError::BadName | AccountError::BadTeam | AccountError::BadLifetime => {
                ApiError::bad_request("bad_request", e.to_string())
            }
            AccountError::Hash(_) | AccountError::Store(_) => ApiError::internal(&e),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match e {
            GrantError::NotFound(_) => ApiError::not_found(e.to_string()),
            GrantError::SelfApproval => {
                ApiError::new(StatusCode::FORBIDDEN, "self_approval", e.to_string())
            }
            GrantError::Closed { .. } => {
                ApiError::new(StatusCode::CONFLICT, "request_closed", e.to_string())
            }
            GrantError::Account(e) => e.into(),
            GrantError::Store(_) => ApiError::internal(&e),
            _ => ApiError::internal(&e),
        }
    }
}

/// A grant waiting for a second person: 202 with the request's id.
fn pending_answer(mut answer: serde_json::Value, id: i64) -> Response {
    answer["pending"] = true.into();
    answer["request"] = id.into();
    (StatusCode::ACCEPTED, Json(answer)).into_response()
}

fn pending_json(p: &PendingGrant) -> serde_json::Value {
    serde_json::json!({
        "request": p.id,
        "requested_by": p.requested_by,
        "requested_at": vigil_vault_core::clock::rfc3339(
            time::OffsetDateTime::from_unix_timestamp(p.requested_at)
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        ),
        "grant": p.grant,
    })
}

/// `POST /v1/users`'s body.
#[derive(serde::Deserialize)]
pub(crate) struct NewUserRequest {
    name: String,
    role: String,
    #[serde(default)]
    teams: Vec<String>,
    password: Option<String>,
}

/// `PATCH /v1/users/{name}`'s body: what to change.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserChange {
    role: Option<String>,
    teams: Option<Vec<String>>,
    disabled: Option<bool>,
    reason: Option<String>,
}

fn account_json(a: &Account) -> serde_json::Value {
    serde_json::json!({
        "name": a.user.name,
        "role": a.user.role,
        "teams": a.teams,
        "disabled": a.disabled_at.is_some(),
    })
}

fn role(text: &str) -> ApiResult<Role> {
    text.parse()
        .map_err(|e| ApiError::bad_request("bad_role", format!("{e}")))
}

/// `GET /v1/users`.
pub(crate) async fn list_users(State(app): State<AppState>) -> ApiResult {
    let vault = app.vault.clone();
    let all = blocking(move || accounts::list_users(vault.store())).await??;
    Ok(Json(serde_json::json!({
        "users": all.iter().map(account_json).collect::<Vec<_>>()
    }))
    .into_response())
}

/// `POST /v1/users`: creates an account (a password is generated and returned if none is
/// given). An account whose role can hear recordings or manage accounts is created disabled,
/// with a grant request a second person approves (202, `"pending": true`, `"request": id`).
pub(crate) async fn add_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewUserRequest>,
) -> ApiResult {
    let new = NewAccount {
        name: body.name,
        role: role(&body.role)?,
        teams: body.teams,
        password: body.password.map(SecretString::from),
    };
    let guarded = grants::is_guarded(new.role);
    let vault = app.vault.clone();
    let (created, request) = blocking(move || -> Result<_, GrantError> {
        let store = vault.store();
        if guarded {
            let (created, id) = grants::request_new_account(store, new, &principal.actor())?;
            Ok((created, Some(id)))
        } else {
            Ok((accounts::add_user(store, new, &principal.actor())?, None))
        }
    })
    .await??;
    let mut answer = account_json(&created.account);
    // A guarded account's password goes to the approver, who resets it (see grants::approve).
    if let (Some(p), None) = (&created.generated_password, request) {
        answer["password"] = p.expose_secret().into();
    }
    Ok(match request {
        Some(id) => pending_answer(answer, id),
        None => (StatusCode::CREATED, Json(answer)).into_response(),
    })
}

/// `GET /v1/grants`: grants waiting for a second person.
pub(crate) async fn grant_requests(State(app): State<AppState>) -> ApiResult {
    let vault = app.vault.clone();
    let now = vigil_vault_core::clock::now().unix_timestamp();
    let open = blocking(move || grants::pending(vault.store(), now)).await??;
    Ok(Json(serde_json::json!({
        "requests": open.iter().map(pending_json).collect::<Vec<_>>()
    }))
    .into_response())
}

/// `POST /v1/grants/{id}/approve`: the second person approves a grant; its requester
/// and the account it is for cannot (403 `self_approval`).
pub(crate) async fn approve_grant(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult {
    let vault = app.vault.clone();
    let now = vigil_vault_core::clock::now().unix_timestamp();
    let (account, password) = blocking(move || -> Result<_, GrantError> {
        let store = vault.store();
        let approved = grants::approve(store, id, &principal.actor(), &principal.name, now)?;
        let name = approved.grant.name;
        let account = store.account(&name)?.ok_or(AccountError::NotFound(name))?;
        Ok((account, approved.password))
    })
    .await??;
    // The account starts over: its one-time password goes to the approver, once.
    let mut answer = account_json(&account);
    answer["password"] = password.expose_secret().into();
    Ok(Json(answer).into_response())
}

/// `POST /v1/grants/{id}/reject`'s body.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectRequest {
    reason: Option<String>,
}

/// `POST /v1/grants/{id}/reject`: the second person says no, or the requester withdraws the
/// request; audited with the reason.
pub(crate) async fn reject_grant(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    body: axum::body::Bytes,
) -> ApiResult {
    // The body is optional: none, or `{"reason": "…"}`.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<RejectRequest>(&body)
            .map_err(|e| ApiError::bad_request("bad_request", format!("bad body: {e}")))?
            .reason
    };
    let vault = app.vault.clone();
    let now = vigil_vault_core::clock::now().unix_timestamp();
    let grant = blocking(move || {
        grants::reject(
            vault.store(),
            id,
            &principal.actor(),
            reason.as_deref(),
            now,
        )
    })
    .await??;
    Ok(
        Json(serde_json::json!({ "request": id, "rejected": true, "grant": grant }))
            .into_response(),
    )
}

/// What of `change` to account `current` needs a second person: a guarded role given, teams
/// changed or the account enabled while its role (new or current) is guarded.
fn guarded_part(change: &UserChange, new_role: Option<Role>, current: &Account) -> Option<Grant> {
    let current_role: Option<Role> = current.user.role.parse().ok();
    let role_after = new_role.or(current_role);
    let guarded_after = role_after.is_some_and(grants::is_guarded);
    let gives_role = new_role.is_some_and(grants::is_guarded);
    let enables = change.disabled == Some(false) && current.disabled_at.is_some();
    let widens = change.teams.is_some() && guarded_after;
    (gives_role || (guarded_after && (enables || widens))).then(|| Grant {
        name: current.user.name.clone(),
        role: new_role.map(|r| r.as_str().to_owned()),
        teams: change.teams.clone(),
        enable: enables,
        asked_of: None, // filled by grants::request
    })
}

/// `PATCH /v1/users/{name}`: changes an account's role, teams, or disabled state. Each change
/// is audited. An account cannot disable itself or drop its own `users` permission.
pub(crate) async fn change_user(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<UserChange>,
) -> ApiResult<Response> {
    let role = change.role.as_deref().map(role).transpose()?;
    if name == principal.name
        && (change.disabled == Some(true) || role.is_some_and(|r| !r.can(Permission::Users)))
    {
        return Err(ApiError::bad_request(
            "self_lockout",
            "an account cannot disable itself or remove its own users permission",
        ));
    }
    let vault = app.vault.clone();
    let actor = principal.actor();
    let outcome = blocking(move || -> Result<_, GrantError> {
        let store = vault.store();
        let current = store
            .account(&name)?
            .ok_or_else(|| AccountError::NotFound(name.clone()))?;
        // A change that gives a guarded power is requested whole, for a second person.
        if let Some(grant) = guarded_part(&change, role, &current) {
            // Disabling never waits for anyone (a compromised account is cut off at once).
            if change.disabled == Some(true) {
                accounts::set_disabled(store, &name, true, &actor, change.reason.as_deref())?;
            }
            let id = grants::request(store, &actor, &grant)?;
            let current = store.account(&name)?.unwrap_or(current);
            return Ok((current, Some(id)));
        }
        if let Some(role) = role {
            accounts::set_role(store, &name, role, &actor)?;
        }
        if let Some(teams) = &change.teams {
            accounts::set_teams(store, &name, teams, &actor)?;
        }
        if let Some(disabled) = change.disabled {
            accounts::set_disabled(store, &name, disabled, &actor, change.reason.as_deref())?;
        }
        Ok((
            store.account(&name)?.ok_or(AccountError::NotFound(name))?,
            None,
        ))
    })
    .await??;
    Ok(match outcome {
        (account, Some(id)) => pending_answer(account_json(&account), id),
        (account, None) => Json(account_json(&account)).into_response(),
    })
}
