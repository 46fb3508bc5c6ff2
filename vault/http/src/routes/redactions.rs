//! A recording's end of life: `POST /v1/redactions` (a range), `DELETE /v1/recordings/{session}`
//! (a whole session) and `GET /v1/tombstones/{segment}`. Every destruction is audited as the
//! calling account with the reason it states, leaves a signed tombstone, and is refused under a
//! legal hold.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;
use vigil_vault_core::access::Principal;
use vigil_vault_core::audit::stated_reason;
use vigil_vault_core::delete::{DeleteError, DeleteRequest};
use vigil_vault_core::redact::{RedactError, RedactReport, RedactRequest};

use super::holds::Reason;
use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{one_line, reason_required, ApiJson, ApiQuery, GivenWhen};

fn report_json(report: &RedactReport) -> serde_json::Value {
    let segments: Vec<_> = report
        .segments
        .iter()
        .map(|s| {
            serde_json::json!({
                "segment_id": s.segment_id,
                "session_id": s.session_id,
                "sequence": s.sequence,
                "tombstone_sha256": s.tombstone_sha256,
                "tombstone_url": format!("/v1/tombstones/{}", s.segment_id),
                "blobs": s.blobs.iter().map(|b| serde_json::json!({
                    "file": b.file, "kind": b.kind, "size": b.size,
                    "sha256": b.sha256, "state": b.state,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "audit_seq": report.audit_seq, "segments": segments })
}

fn held(segment: Uuid, hold: Uuid) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "held",
        format!("segment {segment} is under legal hold {hold}: release the hold first; nothing destroyed"),
    )
    .with_field("segment", segment)
    .with_field("hold", hold)
}

impl From<RedactError> for ApiError {
    fn from(e: RedactError) -> Self {
        match e {
            RedactError::Held { segment, hold } => held(segment, hold),
            RedactError::NothingInRange => {
                ApiError::new(StatusCode::NOT_FOUND, "nothing_in_range", e.to_string())
            }
            RedactError::MissingReason => reason_required("redact this range"),
            RedactError::MissingCase => {
                ApiError::bad_request("case_required", "a redaction names its case (case)")
            }
            RedactError::NoTarget | RedactError::BadRange => {
                ApiError::bad_request("bad_redaction", e.to_string())
            }
            RedactError::StoredCorrupt(..)
            | RedactError::Audit(_)
            | RedactError::Store(_)
            | RedactError::Blobs(_) => ApiError::internal(&e),
        }
    }
}

impl From<DeleteError> for ApiError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::Held { segment, hold } => held(segment, hold),
            DeleteError::NotFound(_) => ApiError::not_found("no such recording"),
            DeleteError::MissingReason => reason_required("delete this recording"),
            DeleteError::Audit(_) | DeleteError::Store(_) | DeleteError::Destroy(_) => {
                ApiError::internal(&e)
            }
        }
    }
}

/// `POST /v1/redactions`'s body.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewRedaction {
    case: Option<String>,
    reason: Option<String>,
    session: Option<Uuid>,
    device: Option<Uuid>,
    from: GivenWhen,
    to: GivenWhen,
}

/// `POST /v1/redactions`: destroys the media of a session's (or device's) segments
/// overlapping a range; 409 when a legal hold covers one of them.
pub(crate) async fn redact(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiJson(body): ApiJson<NewRedaction>,
) -> ApiResult {
    one_line("reason", body.reason.as_deref())?;
    one_line("case", body.case.as_deref())?;
    if stated_reason(body.reason.as_deref()).is_none() {
        return Err(reason_required("redact this range"));
    }
    let request = RedactRequest {
        session: body.session,
        device: body.device,
        from: body.from.when()?.datetime(),
        to: body.to.when()?.datetime(),
        case: body.case.unwrap_or_default(),
        reason: body.reason.unwrap_or_default(),
    };
    let vault = app.vault.clone();
    let actor = principal.actor();
    let report =
        blocking(move || vigil_vault_core::redact::redact(&vault, &request, &actor)).await??;
    Ok(Json(report_json(&report)).into_response())
}

/// `GET /v1/tombstones/{segment}`: the signed tombstone of a redacted (or deleted) segment,
/// byte for byte as stored (verifiable with the vault's receipt key).
pub(crate) async fn tombstone(
    State(app): State<AppState>,
    Path(segment): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found("no tombstone for this segment");
    let segment = Uuid::parse_str(&segment).map_err(|_| not_found())?;
    let vault = app.vault.clone();
    let stored = blocking(move || vigil_vault_core::redact::tombstone(vault.store(), segment))
        .await??
        .ok_or_else(not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::ETAG, format!("\"{}\"", stored.sha256)),
        ],
        stored.tombstone,
    )
        .into_response())
}

/// `DELETE /v1/recordings/{session}` with `{"reason","case"?}` or `?reason=&case=`: destroys
/// the media of every segment of the session (tombstones, audit `recording.delete`); 409 under
/// a legal hold; 404 for a session outside a team-scoped caller's teams.
pub(crate) async fn delete_recording(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(session): Path<String>,
    ApiQuery(query): ApiQuery<Reason>,
    body: Bytes,
) -> ApiResult {
    // The body is optional: DELETE requests often have none.
    let body: Reason = if body.iter().all(u8::is_ascii_whitespace) {
        Reason::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("bad_request", format!("bad JSON body: {e}")))?
    };
    let reason = body.reason.or(query.reason);
    let case = body.case.or(query.case);
    one_line("reason", reason.as_deref())?;
    one_line("case", case.as_deref())?;
    let reason =
        stated_reason(reason.as_deref()).ok_or_else(|| reason_required("delete this recording"))?;
    let session =
        Uuid::parse_str(&session).map_err(|_| ApiError::not_found("no such recording"))?;
    let request = DeleteRequest {
        session,
        reason,
        case,
        teams: principal.team_scope().map(<[String]>::to_vec),
    };
    let vault = app.vault.clone();
    let actor = principal.actor();
    let report =
        blocking(move || vigil_vault_core::delete::delete_session(&vault, &request, &actor))
            .await??;
    Ok(Json(report_json(&report)).into_response())
}
