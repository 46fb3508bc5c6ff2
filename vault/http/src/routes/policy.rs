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
use vigil_vault_core::access::Permission;
use vigil_vault_core::access::Principal;
use vigil_vault_core::policy::{PolicySnapshot, Scope};
use vigil_vault_core::policy_change::{set_layer, Editor, PolicyChangeError};
use vigil_vault_core::Vault;
use vigil_vault_store::metadata::StoreError;

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::ApiJson;

/// The body of `PUT /v1/policy/{scope}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetPolicy {
    /// The new layer (only what it sets).
    layer: serde_json::Value,
    /// Why (kept in the audit log).
    reason: Option<String>,
}

impl From<PolicyChangeError> for ApiError {
    fn from(e: PolicyChangeError) -> Self {
        match e {
            PolicyChangeError::Store(e) => ApiError::internal(&e),
            PolicyChangeError::UnknownDevice(id) => {
                ApiError::not_found(format!("no device with id {id}"))
            }
            PolicyChangeError::Reserved { ref fields, .. } => {
                let fields = fields.clone();
                ApiError::new(StatusCode::FORBIDDEN, "policy_locked", e.to_string())
                    .with_field("fields", fields)
            }
            e => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_policy",
                e.to_string(),
            ),
        }
    }
}

fn scope(text: &str) -> ApiResult<Scope> {
    Scope::parse(text).map_err(|e| ApiError::bad_request("bad_scope", e.to_string()))
}

/// Refuses a scope the caller may not touch (blocking: may read the device's team).
fn check_reach(vault: &Vault, principal: &Principal, scope: &Scope) -> ApiResult<()> {
    if principal.team_scope().is_none() {
        return Ok(());
    }
    let reachable = match scope {
        Scope::Organization => false,
        Scope::Team(t) => principal.sees_team(Some(t)),
        Scope::Device(id) => vault
            .store()
            .devices()?
            .into_iter()
            .find(|d| d.id == *id)
            .is_some_and(|d| principal.sees_team(d.team.as_deref())),
    };
    if reachable {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{scope} is outside the teams of this account"),
        ))
    }
}

/// `GET /v1/policy/{scope}`.
pub(crate) async fn get_policy(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(scope_text): Path<String>,
) -> ApiResult {
    let scope = scope(&scope_text)?;
    let vault = app.vault.clone();
    let body = blocking(move || {
        check_reach(&vault, &principal, &scope)?;
        let snapshot =
            PolicySnapshot::load(vault.store()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let history = vault.store().policy_history(Some(&scope.key()))?;
        let layer = snapshot.layer(&scope);
        Ok::<_, ApiError>(serde_json::json!({
            "scope": scope.key(),
            "version": layer.map_or(0, |l| l.version),
            "layer": layer.map(|l| l.layer.clone()).unwrap_or_default(),
            "history": history.iter().map(|h| serde_json::json!({
                "version": h.version,
                "at": h.at,
                "author": h.author,
                "reason": h.reason,
            })).collect::<Vec<_>>(),
        }))
    })
    .await??;
    Ok(Json(body).into_response())
}

/// `PUT /v1/policy/{scope}`.
pub(crate) async fn put_policy(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(scope_text): Path<String>,
    ApiJson(body): ApiJson<SetPolicy>,
) -> ApiResult {
    let scope = scope(&scope_text)?;
    let vault = app.vault.clone();
    let (scope, change) = blocking(move || {
        check_reach(&vault, &principal, &scope)?;
        let document = body.layer.to_string();
        let reason = vigil_vault_core::audit::stated_reason(body.reason.as_deref());
        let actor = principal.actor();
        let editor = Editor {
            actor: &actor,
            may_relax: principal.role.can(Permission::RelaxPolicy),
        };
        let change = set_layer(vault.store(), &scope, &document, editor, reason.as_deref())?;
        Ok::<_, ApiError>((scope, change))
    })
    .await??;
    app.policy.nudge();
    Ok(Json(serde_json::json!({
        "scope": scope.key(),
        "version": change.version,
        "devices_affected": change.devices_affected,
    }))
    .into_response())
}

/// `GET /v1/agents`.
pub(crate) async fn agents(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Response> {
    let vault = app.vault.clone();
    let agents = blocking(move || {
        vigil_vault_core::audit::record(
            vault.store(),
            &principal.actor(),
            vigil_vault_core::audit::ACTION_AGENTS_READ,
            principal
                .team_scope()
                .map(|t| format!("teams={}", t.join(","))),
            None,
        )?;
        let now = vigil_vault_core::clock::now().unix_timestamp();
        Ok::<_, ApiError>(vigil_vault_core::live::agents(
            vault.store(),
            now,
            principal.team_scope(),
        )?)
    })
    .await??;
    Ok(Json(serde_json::json!({ "agents": agents })).into_response())
}
