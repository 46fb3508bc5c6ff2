//! Accounts: `GET /v1/users`, `POST /v1/users`, `PATCH /v1/users/{name}`.

use age::secrecy::{ExposeSecret, SecretString};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vigil_vault_core::access::{Permission, Principal, Role};
use vigil_vault_core::accounts::{self, AccountError, NewAccount};
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
            AccountError::WeakPassword => ApiError::bad_request("weak_password", e.to_string()),
            AccountError::Role(_) => ApiError::bad_request("bad_role", e.to_string()),
            AccountError::BadName | AccountError::BadTeam | AccountError::BadLifetime => {
                ApiError::bad_request("bad_request", e.to_string())
            }
            AccountError::Hash(_) | AccountError::Store(_) => ApiError::internal(&e),
        }
    }
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

/// `POST /v1/users`: creates an account (a password is generated and returned if none is given).
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
    let vault = app.vault.clone();
    let created =
        blocking(move || accounts::add_user(vault.store(), new, &principal.actor())).await??;
    let mut answer = account_json(&created.account);
    if let Some(p) = &created.generated_password {
        answer["password"] = p.expose_secret().into();
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
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
    let account = blocking(move || {
        let store = vault.store();
        if let Some(role) = role {
            accounts::set_role(store, &name, role, &actor)?;
        }
        if let Some(teams) = &change.teams {
            accounts::set_teams(store, &name, teams, &actor)?;
        }
        if let Some(disabled) = change.disabled {
            accounts::set_disabled(store, &name, disabled, &actor, change.reason.as_deref())?;
        }
        store.account(&name)?.ok_or(AccountError::NotFound(name))
    })
    .await??;
    Ok(Json(account_json(&account)).into_response())
}
