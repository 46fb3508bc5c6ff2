//! Recordings for people: `GET /v1/recordings` (search, audited), `POST …/play` and
//! `POST …/download` (a 60-s link, audited with the stated reason before it exists) and
//! `GET /v1/media/{link}` (the decrypted medium, streamed chunk by chunk as age authenticates
//! it). The rules live in [`vigil_vault_core::search`] and [`vigil_vault_core::playback`].

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use vigil_proto::MediaKind;
use vigil_vault_core::access::Principal;
use vigil_vault_core::audit::stated_reason;
use vigil_vault_core::playback::{self, MediaAsk, OpenLinkError, Purpose, LINK_LIFETIME};
use vigil_vault_core::search::{recording_json, search_as};
use vigil_vault_store::metadata::RecordingFilter;

use super::audit::time_range;
use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};
use crate::extract::{one_line, ApiJson, ApiQuery};

/// `GET /v1/recordings`'s filters.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SearchParams {
    agent: Option<String>,
    team: Option<String>,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    masked: Option<bool>,
    policy_version: Option<i64>,
    limit: Option<usize>,
}

/// The body of a play or download request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MediaRequest {
    kind: String,
    reason: Option<String>,
}

impl From<OpenLinkError> for ApiError {
    fn from(e: OpenLinkError) -> Self {
        ApiError::internal(&e)
    }
}

/// `GET /v1/recordings`: search entries matching the filters, within the caller's teams.
/// Audited as `recording.search` with the filter.
pub(crate) async fn search(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiQuery(p): ApiQuery<SearchParams>,
) -> ApiResult {
    let (from, to) = time_range(p.from.as_deref(), p.to.as_deref())?;
    let filter = RecordingFilter {
        agent: p.agent,
        team: p.team,
        teams: principal.team_scope().map(<[String]>::to_vec),
        from,
        to,
        call_id: p.call_id,
        masked: p.masked,
        policy_version: p.policy_version,
        limit: p.limit.unwrap_or(500).clamp(1, 5000),
        session: None,
    };
    let vault = app.vault.clone();
    let found = blocking(move || search_as(vault.store(), &principal.actor(), &filter)).await??;
    Ok(Json(serde_json::json!({
        "recordings": found.iter().map(recording_json).collect::<Vec<_>>()
    }))
    .into_response())
}

/// `GET /v1/recordings/{session}`: one session's segments, in order. 404 when the vault has
/// none; 403 when they belong to a team outside the caller's (a supervisor opening another
/// team's recording by its address), audited as `access.denied`.
pub(crate) async fn session(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(session): Path<String>,
) -> ApiResult {
    let session: uuid::Uuid = session
        .parse()
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "bad_id", "not a session id"))?;
    let vault = app.vault.clone();
    let actor = principal.actor();
    let teams = principal.team_scope().map(<[String]>::to_vec);
    let found = blocking(move || {
        let all = RecordingFilter {
            session: Some(session),
            limit: 100_000,
            ..Default::default()
        };
        let every = vault.store().recordings(&all)?;
        if every.is_empty() {
            return Ok::<_, ApiError>(None);
        }
        let visible = teams.as_ref().is_none_or(|t| {
            every
                .iter()
                .all(|r| r.team.as_ref().is_some_and(|team| t.contains(team)))
        });
        if !visible {
            vigil_vault_core::audit::record(
                vault.store(),
                &actor,
                "access.denied",
                Some(format!("GET /v1/recordings/{session}")),
                Some("the session belongs to another team".into()),
            )?;
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this recording belongs to a team outside yours",
            ));
        }
        Ok(Some(search_as(vault.store(), &actor, &all)?))
    })
    .await??
    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such session"))?;
    Ok(Json(serde_json::json!({
        "session": session,
        "recordings": found.iter().map(recording_json).collect::<Vec<_>>()
    }))
    .into_response())
}

/// `POST /v1/recordings/{session}/{sequence}/play`.
pub(crate) async fn play(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<(String, String)>,
    body: ApiJson<MediaRequest>,
) -> ApiResult {
    request_link(state, principal, path, body, Purpose::Play).await
}

/// `POST /v1/recordings/{session}/{sequence}/download`.
pub(crate) async fn download(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<(String, String)>,
    body: ApiJson<MediaRequest>,
) -> ApiResult {
    request_link(state, principal, path, body, Purpose::Download).await
}

async fn request_link(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((session, sequence)): Path<(String, String)>,
    ApiJson(body): ApiJson<MediaRequest>,
    purpose: Purpose,
) -> ApiResult {
    let not_found = || ApiError::not_found("no such recording");
    let (session, sequence) =
        vigil_vault_core::ingest::parse_ids(&session, &sequence).map_err(|_| not_found())?;
    let kind = match body.kind.as_str() {
        "voice" => MediaKind::Voice,
        "screen" => MediaKind::Screen,
        _ => return Err(ApiError::bad_request("bad_kind", "kind is voice or screen")),
    };
    one_line("reason", body.reason.as_deref())?;
    let reason = stated_reason(body.reason.as_deref()).ok_or_else(|| {
        ApiError::bad_request(
            "reason_required",
            "state why you play or download this recording (reason)",
        )
    })?;
    let ask = MediaAsk {
        session,
        sequence,
        kind,
        purpose,
        reason,
    };
    let vault = app.vault.clone();
    let secret = blocking(move || playback::request_link(&vault, &principal, ask))
        .await??
        .ok_or_else(not_found)?;
    Ok(Json(serde_json::json!({
        "url": format!("/v1/media/{secret}"),
        "expires_in": LINK_LIFETIME.as_secs(),
        "kind": kind.as_str(),
        "disposition": purpose.disposition(),
    }))
    .into_response())
}

/// `GET /v1/media/{link}`: the decrypted media of a live link made for the caller, streamed.
pub(crate) async fn media(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(secret): Path<String>,
) -> ApiResult {
    let vault = app.vault.clone();
    let (link, reader) = blocking(move || playback::open_link(&vault, &secret, &principal.name))
        .await??
        .ok_or_else(|| ApiError::not_found("no such link, or it expired"))?;
    let (content_type, ext) = match link.kind {
        MediaKind::Voice => ("audio/webm", "webm"),
        MediaKind::Screen => ("video/x-matroska", "mkv"),
    };
    let filename = format!(
        "{}-{:06}.{}.{ext}",
        link.session,
        link.sequence,
        link.kind.as_str()
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("{}; filename=\"{filename}\"", link.purpose.disposition()),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        stream(reader),
    )
        .into_response())
}

/// Decrypted chunks on their way from the blocking decryptor to the response body.
struct Chunks(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_core::Stream for Chunks {
    type Item = std::io::Result<Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Streams a decrypting reader: chunks are read on a blocking thread and sent as they come,
/// a few in flight at most. A decryption error cuts the body short (the client sees an
/// incomplete transfer, never forged bytes).
fn stream(mut reader: Box<dyn Read + Send>) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "decryption failed while streaming");
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    Body::from_stream(Chunks(rx))
}
