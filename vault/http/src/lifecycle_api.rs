//! The operator API of a recording's end of life (brief §6, issue 5): legal holds, range
//! redaction, tombstones and deletion, over the library ([`vigil_vault_core::holds`], [`vigil_vault_core::redact`],
//! [`vigil_vault_core::delete`]). Every change is audited as the calling account (`user:<name>`) with the
//! reason it states; a reason is required.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;
use vigil_vault_core::when::When;

use crate::server::{blocking, error, internal, task_failed, AppState};
use vigil_vault_core::access::Principal;
use vigil_vault_core::delete::{DeleteError, DeleteRequest};
use vigil_vault_core::holds::{HoldError, ReleaseError};
use vigil_vault_core::redact::{RedactError, RedactReport, RedactRequest};
use vigil_vault_store::metadata::lifecycle::{HoldRecord, HoldScope};

fn t(secs: i64) -> serde_json::Value {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(vigil_vault_core::clock::rfc3339)
        .map_or(serde_json::Value::Null, Into::into)
}

fn scope_json(scope: &HoldScope) -> serde_json::Value {
    match scope {
        HoldScope::Session(s) => serde_json::json!({ "type": "session", "session": s }),
        HoldScope::Device { device, from, to } => serde_json::json!({
            "type": "device", "device": device, "from": from.map(t), "to": to.map(t),
        }),
        HoldScope::Range { from, to } => {
            serde_json::json!({ "type": "range", "from": t(*from), "to": t(*to) })
        }
    }
}

fn hold_json(h: &HoldRecord) -> serde_json::Value {
    serde_json::json!({
        "id": h.id,
        "case": h.case_name,
        "scopes": h.scopes.iter().map(scope_json).collect::<Vec<_>>(),
        "created_by": h.created_by,
        "created_at": t(h.created_at),
        "reason": h.reason,
        "active": h.released.is_none(),
        "released": h.released.as_ref().map(|r| serde_json::json!({
            "at": t(r.at), "by": r.by, "reason": r.reason,
        })),
    })
}

fn bad_request(code: &str, detail: String) -> Response {
    error(StatusCode::BAD_REQUEST, code, detail)
}

fn bad_json(r: &JsonRejection) -> Response {
    bad_request("bad_request", r.body_text())
}

/// A 400 refusal: its code and detail.
#[derive(Debug)]
struct BadInput(String, String);

impl IntoResponse for BadInput {
    fn into_response(self) -> Response {
        bad_request(&self.0, self.1)
    }
}

/// A stated text must be one line of at most 1000 bytes (it goes into the audit log).
fn one_line(field: &str, text: Option<&str>) -> Result<(), BadInput> {
    match text {
        Some(t) if t.chars().any(char::is_control) || t.len() > 1000 => Err(BadInput(
            format!("bad_{field}"),
            format!("the {field} is one line of at most 1000 bytes"),
        )),
        _ => Ok(()),
    }
}

fn reason_required(what: &str) -> Response {
    bad_request("reason_required", format!("state why you {what} (reason)"))
}

/// A time in a request body, as given: Unix seconds or RFC 3339 text, parsed by
/// [`When`] so that a bad one is refused as `bad_time` rather than as malformed JSON.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum GivenWhen {
    Seconds(i64),
    Text(String),
}

impl GivenWhen {
    fn when(&self) -> Result<When, BadInput> {
        match self {
            GivenWhen::Seconds(s) => When::from_unix(*s),
            GivenWhen::Text(text) => text.parse(),
        }
        .map_err(|e| BadInput("bad_time".into(), e.to_string()))
    }

    fn seconds(&self) -> Result<i64, BadInput> {
        self.when().map(When::unix)
    }

    fn datetime(&self) -> Result<time::OffsetDateTime, BadInput> {
        self.when().map(When::datetime)
    }
}

/// `GET /v1/holds`'s filter.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct HoldsParams {
    /// Include released holds.
    #[serde(default)]
    all: bool,
}

/// `GET /v1/holds[?all=true]`: the active holds (or all), oldest first.
pub(crate) async fn list_holds(
    State(app): State<AppState>,
    params: Result<Query<HoldsParams>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return bad_request("bad_request", "all is true or false".into());
    };
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::holds::list_holds(vault.store(), p.all)).await {
        Some(Ok(holds)) => Json(serde_json::json!({
            "holds": holds.iter().map(hold_json).collect::<Vec<_>>()
        }))
        .into_response(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
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

/// `POST /v1/holds`: places a hold over sessions, devices (whole) and time ranges.
pub(crate) async fn add_hold(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewHold>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    if let Err(r) = one_line("reason", body.reason.as_deref())
        .and_then(|()| one_line("case", body.case.as_deref()))
    {
        return r.into_response();
    }
    let Some(reason) = vigil_vault_core::audit::stated_reason(body.reason.as_deref()) else {
        return reason_required("place this hold");
    };
    let mut scopes: Vec<HoldScope> = body.sessions.into_iter().map(HoldScope::Session).collect();
    for d in &body.devices {
        let when = |w: &Option<GivenWhen>| w.as_ref().map(GivenWhen::seconds).transpose();
        let scope = match d {
            DeviceBody::Whole(device) => HoldScope::Device {
                device: *device,
                from: None,
                to: None,
            },
            DeviceBody::Limited { device, from, to } => match (when(from), when(to)) {
                (Ok(from), Ok(to)) => HoldScope::Device {
                    device: *device,
                    from,
                    to,
                },
                (Err(r), _) | (_, Err(r)) => return r.into_response(),
            },
        };
        scopes.push(scope);
    }
    for range in &body.ranges {
        match (range.from.seconds(), range.to.seconds()) {
            (Ok(from), Ok(to)) => scopes.push(HoldScope::Range { from, to }),
            (Err(r), _) | (_, Err(r)) => return r.into_response(),
        }
    }
    let case = body.case.unwrap_or_default();
    let vault = app.vault.clone();
    let actor = principal.actor();
    let result = blocking(move || {
        vigil_vault_core::holds::add_hold(vault.store(), &case, scopes, &actor, &reason)
    })
    .await;
    match result {
        Some(Ok(hold)) => (StatusCode::CREATED, Json(hold_json(&hold))).into_response(),
        Some(Err(e @ (HoldError::Store(_) | HoldError::Audit { .. }))) => internal(&e),
        Some(Err(HoldError::MissingReason)) => reason_required("place this hold"),
        Some(Err(HoldError::MissingCase)) => {
            bad_request("case_required", "a hold names its case (case)".into())
        }
        Some(Err(e)) => bad_request("bad_hold", e.to_string()),
        None => task_failed(),
    }
}

/// A body or query carrying a reason (and, for deletion, optionally a case).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    reason: Option<String>,
    case: Option<String>,
}

/// `POST /v1/holds/{id}/release`: releases a hold (audited first).
pub(crate) async fn release_hold(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    body: Result<Json<Reason>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such hold".into());
    };
    if let Err(r) = one_line("reason", body.reason.as_deref()) {
        return r.into_response();
    }
    let Some(reason) = vigil_vault_core::audit::stated_reason(body.reason.as_deref()) else {
        return reason_required("release this hold");
    };
    let vault = app.vault.clone();
    let actor = principal.actor();
    let result =
        blocking(move || vigil_vault_core::holds::release_hold(vault.store(), id, &actor, &reason))
            .await;
    match result {
        Some(Ok(hold)) => Json(hold_json(&hold)).into_response(),
        Some(Err(ReleaseError::Unknown(_))) => {
            error(StatusCode::NOT_FOUND, "not_found", "no such hold".into())
        }
        Some(Err(e @ ReleaseError::AlreadyReleased(_))) => {
            error(StatusCode::CONFLICT, "already_released", e.to_string())
        }
        Some(Err(ReleaseError::MissingReason)) => reason_required("release this hold"),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

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

fn held(segment: Uuid, hold: Uuid) -> Response {
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({
            "error": "held",
            "detail": format!(
                "segment {segment} is under legal hold {hold}: release the hold first; nothing destroyed"
            ),
            "segment": segment,
            "hold": hold,
        })),
    )
        .into_response()
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
    body: Result<Json<NewRedaction>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return bad_json(&r),
    };
    if let Err(r) = one_line("reason", body.reason.as_deref())
        .and_then(|()| one_line("case", body.case.as_deref()))
    {
        return r.into_response();
    }
    if vigil_vault_core::audit::stated_reason(body.reason.as_deref()).is_none() {
        return reason_required("redact this range");
    }
    let (from, to) = match (body.from.datetime(), body.to.datetime()) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let request = RedactRequest {
        session: body.session,
        device: body.device,
        from,
        to,
        case: body.case.unwrap_or_default(),
        reason: body.reason.unwrap_or_default(),
    };
    let vault = app.vault.clone();
    let actor = principal.actor();
    let result = blocking(move || vigil_vault_core::redact::redact(&vault, &request, &actor)).await;
    match result {
        Some(Ok(report)) => Json(report_json(&report)).into_response(),
        Some(Err(RedactError::Held { segment, hold })) => held(segment, hold),
        Some(Err(e @ RedactError::NothingInRange)) => {
            error(StatusCode::NOT_FOUND, "nothing_in_range", e.to_string())
        }
        Some(Err(RedactError::MissingReason)) => reason_required("redact this range"),
        Some(Err(RedactError::MissingCase)) => {
            bad_request("case_required", "a redaction names its case (case)".into())
        }
        Some(Err(e @ (RedactError::NoTarget | RedactError::BadRange))) => {
            bad_request("bad_redaction", e.to_string())
        }
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `GET /v1/tombstones/{segment}`: the signed tombstone of a redacted (or deleted) segment,
/// byte for byte as stored (verifiable with the vault's receipt key).
pub(crate) async fn tombstone(
    State(app): State<AppState>,
    Path(segment): Path<String>,
) -> Response {
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no tombstone for this segment".into(),
        )
    };
    let Ok(segment) = Uuid::parse_str(&segment) else {
        return not_found();
    };
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::redact::tombstone(vault.store(), segment)).await {
        Some(Ok(Some(t))) => (
            [
                (header::CONTENT_TYPE, "application/json".to_owned()),
                (header::ETAG, format!("\"{}\"", t.sha256)),
            ],
            t.tombstone,
        )
            .into_response(),
        Some(Ok(None)) => not_found(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// `DELETE /v1/recordings/{session}` with `{"reason","case"?}` or `?reason=&case=`: destroys
/// the media of every segment of the session (tombstones, audit `recording.delete`); 409 under
/// a legal hold; 404 for a session outside a team-scoped caller's teams.
pub(crate) async fn delete_recording(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(session): Path<String>,
    query: Result<Query<Reason>, QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(query)) = query else {
        return bad_request("bad_request", "bad query parameters".into());
    };
    let body: Reason = if body.iter().all(u8::is_ascii_whitespace) {
        Reason::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return bad_request("bad_request", format!("bad JSON body: {e}")),
        }
    };
    let reason = body.reason.or(query.reason);
    let case = body.case.or(query.case);
    if let Err(r) =
        one_line("reason", reason.as_deref()).and_then(|()| one_line("case", case.as_deref()))
    {
        return r.into_response();
    }
    let Some(reason) = vigil_vault_core::audit::stated_reason(reason.as_deref()) else {
        return reason_required("delete this recording");
    };
    let Ok(session) = Uuid::parse_str(&session) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such recording".into(),
        );
    };
    let request = DeleteRequest {
        session,
        reason,
        case,
        teams: principal.team_scope().map(<[String]>::to_vec),
    };
    let vault = app.vault.clone();
    let actor = principal.actor();
    let result =
        blocking(move || vigil_vault_core::delete::delete_session(&vault, &request, &actor)).await;
    match result {
        Some(Ok(report)) => Json(report_json(&report)).into_response(),
        Some(Err(DeleteError::Held { segment, hold })) => held(segment, hold),
        Some(Err(DeleteError::NotFound(_))) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such recording".into(),
        ),
        Some(Err(DeleteError::MissingReason)) => reason_required("delete this recording"),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}
