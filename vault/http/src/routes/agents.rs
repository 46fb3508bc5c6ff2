//! What agents call, each request signed by the device key (or, to enroll, carrying a one-use
//! token): `POST /v1/enroll`, `PUT /v1/segments/{session}/{sequence}`, `POST /v1/heartbeat`,
//! `POST /v1/policy/poll`; and `GET /v1/gaps`, what is missing of their sessions.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use vigil_proto::upload_auth::UPLOAD_AUTH_HEADER;
use vigil_vault_core::enroll::{EnrollError, EnrollRequest};
use vigil_vault_core::heartbeat::HeartbeatRefusal;
use vigil_vault_core::ingest::IngestError;
use vigil_vault_core::policy_push::{answer_poll, check_poll, PollRefusal};
use vigil_vault_core::upload_gate::{self, GateError};

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery};
use crate::upload_body::{self, ReceiveError};

impl From<EnrollError> for ApiError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::BadRequest(_) => ApiError::bad_request("bad_request", e.to_string()),
            EnrollError::InvalidToken(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "invalid or expired enrollment token",
            ),
            EnrollError::Revoked => {
                ApiError::new(StatusCode::FORBIDDEN, "revoked_device", e.to_string())
            }
            EnrollError::Store(e) => ApiError::internal(&e),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let status = match &e {
            IngestError::BadId(_)
            | IngestError::Body(_)
            | IngestError::Malformed(_)
            | IngestError::Mismatch(_) => StatusCode::BAD_REQUEST,
            IngestError::BadSignature(_)
            | IngestError::UnknownDevice(_)
            | IngestError::Revoked(_)
            | IngestError::WrongDevice(_) => StatusCode::FORBIDDEN,
            IngestError::Conflict(_) | IngestError::ChainBroken(_) => StatusCode::CONFLICT,
            IngestError::BlobMismatch { .. } | IngestError::NotSealedForVault { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => return ApiError::internal(&e),
        };
        tracing::warn!(code = e.code(), error = %e, "segment refused");
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<HeartbeatRefusal> for ApiError {
    fn from(e: HeartbeatRefusal) -> Self {
        let status = match &e {
            HeartbeatRefusal::Envelope(signed)
                if signed.kind() == vigil_proto::SignedErrorKind::BadSignature =>
            {
                StatusCode::FORBIDDEN
            }
            HeartbeatRefusal::UnknownDevice | HeartbeatRefusal::Revoked(_) => StatusCode::FORBIDDEN,
            HeartbeatRefusal::Store(_) => return ApiError::internal(&e),
            _ => StatusCode::BAD_REQUEST,
        };
        tracing::warn!(code = e.code(), error = %e, "heartbeat refused");
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<PollRefusal> for ApiError {
    fn from(e: PollRefusal) -> Self {
        let status = match &e {
            PollRefusal::BadSignature | PollRefusal::UnknownDevice | PollRefusal::Revoked(_) => {
                StatusCode::FORBIDDEN
            }
            PollRefusal::Malformed(_) | PollRefusal::Stale(_) => StatusCode::BAD_REQUEST,
            PollRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PollRefusal::Store(_) => return ApiError::internal(&e),
        };
        tracing::warn!(code = e.code(), error = %e, "policy poll refused");
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// `POST /v1/enroll`.
pub(crate) async fn enroll(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> ApiResult {
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::enroll::enroll(&vault, &request)).await? {
        Ok(answer) => {
            app.metrics.enrolled();
            Ok(Json(answer).into_response())
        }
        Err(e) => {
            let code = match &e {
                EnrollError::BadRequest(_) => "bad_request",
                EnrollError::InvalidToken(_) => "invalid_token",
                EnrollError::Revoked => "revoked_device",
                EnrollError::Store(_) => return Err(e.into()),
            };
            tracing::warn!(error = %e, "enrollment refused");
            app.metrics.enroll_refused(code);
            Err(e.into())
        }
    }
}

/// `PUT /v1/segments/{session}/{sequence}`: verified ingest; 201 with the signed receipt, 200
/// for a segment stored before.
pub(crate) async fn put_segment(
    State(app): State<AppState>,
    Path((session, sequence)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    // Who is sending, before a byte of the body is read (issue 13 §4).
    let ids = vigil_vault_core::ingest::parse_ids(&session, &sequence).map_err(|e| {
        app.metrics.rejected(e.code());
        ApiError::from(e)
    })?;
    let signature = headers
        .get(UPLOAD_AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (vault, rate) = (app.vault.clone(), app.upload_rate.clone());
    let now = vigil_vault_core::clock::now().unix_timestamp_nanos() as f64 / 1e9;
    let admitted =
        blocking(move || upload_gate::admit(&vault, &rate, signature.as_deref(), ids, now))
            .await?
            .map_err(|e| gate_refusal(&app, e))?;
    // The body streams to incoming/ (hashed on the way), so a slow or large upload holds a
    // file, not memory; only `ingest_slots` bodies are opened in memory at once.
    let received = upload_body::receive(body, app.incoming.clone(), app.max_body_bytes)
        .await
        .map_err(|e| {
            let (status, cause) = match &e {
                ReceiveError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
                ReceiveError::Unreadable(_) => (StatusCode::BAD_REQUEST, "body_unreadable"),
                ReceiveError::Io(_) => return ApiError::internal(&e),
            };
            tracing::warn!(cause, "segment upload refused: {e}");
            app.metrics.rejected(cause);
            ApiError::new(status, cause, e.to_string())
        })?;
    admitted
        .check_digest(&received.sha256_hex)
        .map_err(|e| gate_refusal(&app, e))?;
    let size = received.len;
    let _slot = app
        .ingest_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let vault = app.vault.clone();
    let result = blocking(move || {
        let body = std::fs::read(received.file.path())?;
        drop(received);
        Ok::<_, std::io::Error>(vigil_vault_core::ingest::ingest(
            &vault,
            &session,
            &sequence,
            &body,
            &admitted.device_key,
        ))
    })
    .await?
    .map_err(|e| ApiError::internal(&e))?;
    let accepted = result.map_err(|e| {
        app.metrics.rejected(e.code());
        ApiError::from(e)
    })?;
    let status = if accepted.duplicate {
        app.metrics.duplicate();
        StatusCode::OK
    } else {
        app.metrics.stored(size);
        StatusCode::CREATED
    };
    Ok((
        status,
        [(header::CONTENT_TYPE, "application/json")],
        accepted.receipt,
    )
        .into_response())
}

/// An upload refused at the gate: counted, and answered with its code.
fn gate_refusal(app: &AppState, e: GateError) -> ApiError {
    app.metrics.rejected(e.code());
    tracing::warn!(cause = e.code(), "segment upload refused: {e}");
    let status = match &e {
        GateError::Missing | GateError::Auth(_) => StatusCode::UNAUTHORIZED,
        // As ingest answers a manifest signed by such a key.
        GateError::UnknownDevice | GateError::Revoked(_) => StatusCode::FORBIDDEN,
        GateError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        GateError::BodyMismatch => StatusCode::BAD_REQUEST,
        _ => return ApiError::internal(&e),
    };
    let error = ApiError::new(status, e.code(), e.to_string());
    match e {
        GateError::RateLimited(secs) => error.with_header(header::RETRY_AFTER, secs.to_string()),
        _ => error,
    }
}

/// `POST /v1/heartbeat`.
pub(crate) async fn heartbeat(State(app): State<AppState>, body: Bytes) -> ApiResult {
    let vault = app.vault.clone();
    let result =
        blocking(move || vigil_vault_core::heartbeat::record_heartbeat(&vault, &body)).await?;
    let accepted = result.map_err(|e| {
        app.metrics.heartbeat_refused(e.code());
        ApiError::from(e)
    })?;
    app.metrics.heartbeat(accepted.device_id, accepted.backlog);
    app.live_changed.notify_waiters();
    Ok(Json(serde_json::json!({ "status": "ok", "sessions": accepted.sessions })).into_response())
}

/// `POST /v1/devices/rekey`: a device replaces its key (signed by the current and the new key);
/// 200 with its id and new key id.
pub(crate) async fn rekey(State(app): State<AppState>, body: Bytes) -> ApiResult {
    let vault = app.vault.clone();
    let device = blocking(move || vigil_vault_core::rekey::rekey(&vault, &body))
        .await?
        .map_err(|e| {
            use vigil_vault_core::rekey::RekeyError as E;
            let status = match &e {
                E::BadSignature(_) | E::UnknownDevice | E::Revoked(_) => StatusCode::FORBIDDEN,
                E::KeyInUse | E::KeyChanged => StatusCode::CONFLICT,
                E::Store(_) => return ApiError::internal(&e),
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::warn!(code = e.code(), error = %e, "device re-key refused");
            ApiError::new(status, e.code(), e.to_string())
        })?;
    Ok(Json(serde_json::json!({
        "device_id": device.id,
        "key_id": device.key_id,
    }))
    .into_response())
}

/// `POST /v1/policy/poll`: the device's signed policy when newer than it has, else 204 after
/// the wait.
pub(crate) async fn policy_poll(State(app): State<AppState>, body: Bytes) -> ApiResult {
    let vault = app.vault.clone();
    let checked = blocking(move || check_poll(&vault, &body)).await??;
    Ok(match answer_poll(&app.vault, &app.policy, checked).await? {
        Some(signed) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            signed,
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[derive(serde::Deserialize)]
pub(crate) struct GapsQuery {
    session: Option<uuid::Uuid>,
}

/// `GET /v1/gaps[?session=ID]`: per session, what was stored, reported and is missing.
pub(crate) async fn gaps(
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<GapsQuery>,
) -> ApiResult<Response> {
    let vault = app.vault.clone();
    let all =
        blocking(move || vigil_vault_core::gaps::gaps(vault.store(), query.session)).await??;
    let ranges = |r: &[(i64, i64)]| r.iter().map(|(a, b)| [*a, *b]).collect::<Vec<_>>();
    let sessions: Vec<_> = all
        .iter()
        .map(|g| {
            serde_json::json!({
                "session": g.session,
                "stored": g.stored,
                "last_sequence": g.last_sequence,
                "closed": g.closed,
                "reported": g.reported,
                "produced": g.produced,
                "missing": ranges(&g.missing),
                "in_transit": ranges(&g.in_transit),
                "lost": ranges(&g.lost),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "sessions": sessions })).into_response())
}
