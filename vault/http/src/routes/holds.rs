//! Legal holds: `GET /v1/holds`, `POST /v1/holds`, `POST /v1/holds/{id}/release`. Every change is
//! audited as the calling account with the reason it states; a reason is required.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;
use vigil_vault_core::access::Principal;
use vigil_vault_core::audit::stated_reason;
use vigil_vault_core::holds::{self, HoldError, ReleaseError};
use vigil_vault_store::metadata::lifecycle::{HoldRecord, HoldScope};

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{one_line, reason_required, ApiJson, ApiQuery, GivenWhen};

/// RFC 3339 text of Unix seconds, for answers.
pub(crate) fn rfc3339(secs: i64) -> serde_json::Value {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(vigil_vault_core::clock::rfc3339)
        .map_or(serde_json::Value::Null, Into::into)
}

fn scope_json(scope: &HoldScope) -> serde_json::Value {
    let t = |s: &Option<i64>| s.map(rfc3339);
    match scope {
        HoldScope::Session(s) => serde_json::json!({ "type": "session", "session": s }),
        HoldScope::Device { device, from, to } => serde_json::json!({
            "type": "device", "device": device, "from": t(from), "to": t(to),
        }),
        HoldScope::Range { from, to } => {
            serde_json::json!({ "type": "range", "from": rfc3339(*from), "to": rfc3339(*to) })
        }
    }
}

fn hold_json(h: &HoldRecord) -> serde_json::Value {
    serde_json::json!({
        "id": h.id,
        "case": h.case_name,
        "scopes": h.scopes.iter().map(scope_json).collect::<Vec<_>>(),
        "created_by": h.created_by,
        "created_at": rfc3339(h.created_at),
        "reason": h.reason,
        "active": h.released.is_none(),
        "released": h.released.as_ref().map(|r| serde_json::json!({
            "at": rfc3339(r.at), "by": r.by, "reason": r.reason,
        })),
    })
}

impl From<HoldError> for ApiError {
    fn from(e: HoldError) -> Self {
        match e {
            HoldError::MissingReason => reason_required("place this hold"),
            HoldError::MissingCase => {
                ApiError::bad_request("case_required", "a hold names its case (case)")
            }
            HoldError::NoScope | HoldError::BadRange { .. } => {
                ApiError::bad_request("bad_hold", e.to_string())
            }
            HoldError::Store(_) | HoldError::Audit { .. } => ApiError::internal(&e),
        }
    }
}

impl From<ReleaseError> for ApiError {
    fn from(e: ReleaseError) -> Self {
        match e {
            ReleaseError::Unknown(_) => ApiError::not_found("no such hold"),
            ReleaseError::AlreadyReleased(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_released", e.to_string())
            }
            ReleaseError::MissingReason => reason_required("release this hold"),
            ReleaseError::Audit(_) | ReleaseError::Store(_) => ApiError::internal(&e),
        }
    }
}

/// `GET /v1/holds`'s filter.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct HoldsParams {
    /// Include released holds.
    #[serde(default)]
    all: bool,
}

/// A time range of a hold.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct RangeBody {
    from: GivenWhen,
    to: GivenWhen,
}

/// A device of a hold: its id (held whole), or its id with a range limiting it.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum DeviceBody {
    Whole(Uuid),
    Limited {
        device: Uuid,
        from: Option<GivenWhen>,
        to: Option<GivenWhen>,
    },
}

/// `POST /v1/holds`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewHold {
    case: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    sessions: Vec<Uuid>,
    #[serde(default)]
    devices: Vec<DeviceBody>,
    #[serde(default)]
    ranges: Vec<RangeBody>,
}

/// A body carrying a reason (and, for deletion, optionally a case).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    pub(crate) reason: Option<String>,
    pub(crate) case: Option<String>,
}

/// `GET /v1/holds[?all=true]`: the active holds (or all), oldest first.
pub(crate) async fn list_holds(
    State(app): State<AppState>,
    ApiQuery(p): ApiQuery<HoldsParams>,
) -> ApiResult {
    let vault = app.vault.clone();
    let holds = blocking(move || holds::list_holds(vault.store(), p.all)).await??;
    Ok(Json(serde_json::json!({
        "holds": holds.iter().map(hold_json).collect::<Vec<_>>()
    }))
    .into_response())
}

/// The scopes a new hold's body names.
fn scopes_of(body: &NewHold) -> ApiResult<Vec<HoldScope>> {
    let seconds =
        |w: &Option<GivenWhen>| w.as_ref().map(|w| w.when().map(|w| w.unix())).transpose();
    let mut scopes: Vec<HoldScope> = body
        .sessions
        .iter()
        .copied()
        .map(HoldScope::Session)
        .collect();
    for d in &body.devices {
        scopes.push(match d {
            DeviceBody::Whole(device) => HoldScope::Device {
                device: *device,
                from: None,
                to: None,
            },
            DeviceBody::Limited { device, from, to } => HoldScope::Device {
                device: *device,
                from: seconds(from)?,
                to: seconds(to)?,
            },
        });
    }
    for range in &body.ranges {
        scopes.push(HoldScope::Range {
            from: range.from.when()?.unix(),
            to: range.to.when()?.unix(),
        });
    }
    Ok(scopes)
}

/// `POST /v1/holds`: places a hold over sessions, devices (whole) and time ranges.
pub(crate) async fn add_hold(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewHold>,
) -> ApiResult {
    one_line("reason", body.reason.as_deref())?;
    one_line("case", body.case.as_deref())?;
    let reason =
        stated_reason(body.reason.as_deref()).ok_or_else(|| reason_required("place this hold"))?;
    let scopes = scopes_of(&body)?;
    let case = body.case.unwrap_or_default();
    let vault = app.vault.clone();
    let actor = principal.actor();
    let hold =
        blocking(move || holds::add_hold(vault.store(), &case, scopes, &actor, &reason)).await??;
    Ok((StatusCode::CREATED, Json(hold_json(&hold))).into_response())
}

/// `POST /v1/holds/{id}/release`: releases a hold (audited first).
pub(crate) async fn release_hold(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("no such hold"))?;
    one_line("reason", body.reason.as_deref())?;
    let reason = stated_reason(body.reason.as_deref())
        .ok_or_else(|| reason_required("release this hold"))?;
    let vault = app.vault.clone();
    let actor = principal.actor();
    let hold = blocking(move || holds::release_hold(vault.store(), id, &actor, &reason)).await??;
    Ok(Json(hold_json(&hold)).into_response())
}
