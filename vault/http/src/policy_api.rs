//! The policy API for supervisors and IT automation, and agents' live state for the console:
//!
//! - `GET /v1/policy/{scope}` (policy): the layer as set, its version and history;
//! - `PUT /v1/policy/{scope}` (policy) `{"layer": {…}, "reason": "…"}`: replaces the layer
//!   (validated against every device it affects, versioned, audited as the user);
//! - `GET /v1/agents` (search): every device's live state.
//!
//! Scopes are `organization`, `team:<name>`, `device:<uuid>`. A supervisor's rights end at
//! their teams: their teams' layers and their teams' devices, never the organization's.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use crate::server::{blocking, error, internal, task_failed, AppState};
use vigil_vault_core::access::Principal;
use vigil_vault_core::policy::{set_layer, PolicyChangeError, PolicySnapshot, Scope};

/// The body of `PUT /v1/policy/{scope}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPolicy {
    /// The new layer (only what it sets).
    layer: serde_json::Value,
    /// Why (kept in the audit log).
    reason: Option<String>,
}

/// Whether the caller may touch this scope (blocking: may read the device's team).
fn in_reach(
    vault: &vigil_vault_core::Vault,
    principal: &Principal,
    scope: &Scope,
) -> Result<bool, vigil_vault_store::metadata::StoreError> {
    if principal.team_scope().is_none() {
        return Ok(true);
    }
    Ok(match scope {
        Scope::Organization => false,
        Scope::Team(t) => principal.sees_team(Some(t)),
        Scope::Device(id) => vault
            .store()
            .devices()?
            .into_iter()
            .find(|d| d.id == *id)
            .is_some_and(|d| principal.sees_team(d.team.as_deref())),
    })
}

fn bad_scope(e: vigil_vault_core::policy::ScopeError) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_scope", e.to_string())
}

fn out_of_reach(scope: &Scope) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!("{scope} is outside the teams of this account"),
    )
}

/// `GET /v1/policy/{scope}`.
pub(crate) async fn get_policy(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(scope): Path<String>,
) -> Response {
    let scope = match Scope::parse(&scope) {
        Ok(s) => s,
        Err(e) => return bad_scope(e),
    };
    let vault = app.vault.clone();
    let result = blocking(move || {
        if !in_reach(&vault, &principal, &scope)? {
            return Ok(Err(scope));
        }
        let snapshot = PolicySnapshot::load(vault.store())
            .map_err(|e| vigil_vault_store::metadata::StoreError::Corrupt(e.to_string()))?;
        let history = vault.store().policy_history(Some(&scope.key()))?;
        let layer = snapshot.layer(&scope);
        Ok::<_, vigil_vault_store::metadata::StoreError>(Ok(serde_json::json!({
            "scope": scope.key(),
            "version": layer.map_or(0, |l| l.version),
            "layer": layer.map(|l| l.layer.clone()).unwrap_or_default(),
            "history": history.iter().map(|h| serde_json::json!({
                "version": h.version,
                "at": h.at,
                "author": h.author,
                "reason": h.reason,
            })).collect::<Vec<_>>(),
        })))
    })
    .await;
    match result {
        Some(Ok(Ok(body))) => Json(body).into_response(),
        Some(Ok(Err(scope))) => out_of_reach(&scope),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `PUT /v1/policy/{scope}`.
pub(crate) async fn put_policy(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(scope): Path<String>,
    body: Result<Json<SetPolicy>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let scope = match Scope::parse(&scope) {
        Ok(s) => s,
        Err(e) => return bad_scope(e),
    };
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "body must be {\"layer\": {…}, \"reason\": \"…\"}".into(),
        );
    };
    let vault = app.vault.clone();
    let result = blocking(move || {
        if !in_reach(&vault, &principal, &scope)? {
            return Ok(Err(out_of_reach(&scope)));
        }
        let document = body.layer.to_string();
        let reason = vigil_vault_core::audit::stated_reason(body.reason.as_deref());
        Ok::<_, vigil_vault_store::metadata::StoreError>(Ok(set_layer(
            vault.store(),
            &scope,
            &document,
            &principal.actor(),
            reason.as_deref(),
        )
        .map(|change| (scope, change))))
    })
    .await;
    match result {
        Some(Ok(Ok(Ok((scope, change))))) => {
            app.policy.nudge();
            Json(serde_json::json!({
                "scope": scope.key(),
                "version": change.version,
                "devices_affected": change.devices_affected,
            }))
            .into_response()
        }
        Some(Ok(Ok(Err(PolicyChangeError::Store(e))))) => internal(&e),
        Some(Ok(Ok(Err(PolicyChangeError::UnknownDevice(id))))) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no device with id {id}"),
        ),
        Some(Ok(Ok(Err(e)))) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_policy",
            e.to_string(),
        ),
        Some(Ok(Err(refusal))) => refusal,
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `GET /v1/agents`.
pub(crate) async fn agents(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Response {
    let vault = app.vault.clone();
    let result = blocking(move || {
        let now = vigil_vault_core::clock::now().unix_timestamp();
        vigil_vault_core::live::agents(vault.store(), now, principal.team_scope())
    })
    .await;
    match result {
        Some(Ok(agents)) => Json(serde_json::json!({ "agents": agents })).into_response(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}
