//! The record: `GET /v1/audit` and `GET /v1/devices`.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use vigil_vault_core::access::Principal;
use vigil_vault_core::when::TimeRange;
use vigil_vault_store::metadata::{AuditQuery, AuditRecord};

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::ApiQuery;

/// `GET /v1/audit`'s filters.
#[derive(serde::Deserialize)]
pub(crate) struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

/// The JSON of an audit record.
fn audit_json(r: &AuditRecord) -> serde_json::Value {
    let at = time::OffsetDateTime::from_unix_timestamp(r.draft.at)
        .map(vigil_vault_core::clock::rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        "seq": r.seq,
        "at": at,
        "actor": r.draft.actor,
        "action": r.draft.action,
        "target": r.draft.target,
        "reason": r.draft.reason,
        "client_addr": r.draft.client_addr,
        "user_agent": r.draft.user_agent,
        "prev_sha256": r.prev_sha256,
        "sha256": r.sha256,
    })
}

/// The filter as the audit log shows it (printable, bounded).
fn describe(q: &AuditQuery) -> String {
    let mut parts = Vec::new();
    for (name, value) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("target", &q.target),
    ] {
        if let Some(v) = value {
            parts.push(format!(
                "{name}={}",
                vigil_vault_core::audit::printable(v, 64)
            ));
        }
    }
    for (name, value) in [("from", q.from), ("to", q.to)] {
        if let Some(v) = value {
            parts.push(format!("{name}={v}"));
        }
    }
    if q.after > 0 {
        parts.push(format!("after={}", q.after));
    }
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(" ")
    }
}

/// A `from`/`to` pair of query parameters as Unix seconds, or a `bad_time` refusal.
pub(crate) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> ApiResult<(Option<i64>, Option<i64>)> {
    TimeRange::parse(from, to)
        .map(|r| r.unix())
        .map_err(|e| ApiError::bad_request("bad_time", e.to_string()))
}

/// `GET /v1/audit`: records matching the filters, oldest first; page with `after`. Reading
/// the record is itself recorded (`audit.read`, with the filter).
pub(crate) async fn audit(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> ApiResult {
    let (from, to) = time_range(p.from.as_deref(), p.to.as_deref())?;
    let query = AuditQuery {
        actor: p.actor,
        action: p.action,
        target: p.target,
        from,
        to,
        after: p.after.unwrap_or(0),
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
    };
    let vault = app.vault.clone();
    let records = blocking(move || {
        vigil_vault_core::audit::record(
            vault.store(),
            &principal.actor(),
            vigil_vault_core::audit::ACTION_AUDIT_READ,
            Some(describe(&query)),
            None,
        )?;
        vault.store().audit_query(&query)
    })
    .await??;
    Ok(Json(serde_json::json!({
        "records": records.iter().map(audit_json).collect::<Vec<_>>(),
        "next_after": records.last().map(|r| r.seq),
    }))
    .into_response())
}

/// `GET /v1/devices` (a team-scoped caller sees its teams' devices only).
pub(crate) async fn devices(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Response> {
    let vault = app.vault.clone();
    let all = blocking(move || vault.store().devices()).await??;
    let devices: Vec<_> = all
        .iter()
        .filter(|d| principal.sees_team(d.team.as_deref()))
        .map(|d| {
            serde_json::json!({
                "id": d.id,
                "key_id": d.key_id,
                "hostname": d.hostname,
                "user": d.user,
                "team": d.team,
                "enrolled_at": d.enrolled_at,
                "revoked_at": d.revoked_at,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "devices": devices })).into_response())
}
