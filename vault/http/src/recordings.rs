//! Recordings for people: search, play and download (brief §6, issue 5).
//!
//! Ingest writes a search entry per segment (`index_segment`: recorded user, device team, call
//! id, masked or not, start and end, the policy version it was recorded under). Playing or
//! downloading asks for a short-lived link (60 s, bound to the account, the segment, the media
//! kind and inline-or-attachment), audited
//! with the stated reason *before* the link exists; fetching the link decrypts the sealed blob
//! with the recording identity in memory and streams it chunk by chunk as age authenticates
//! them. Nothing decrypted touches the disk.
//!
//! Links are stored (as hashes of their secrets) in the metadata store, so any instance sharing
//! it serves them.

use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;
use vigil_proto::MediaKind;

use crate::server::{blocking, error, internal, task_failed, AppState};
use vigil_vault_core::access::Principal;
use vigil_vault_core::audit;
use vigil_vault_core::credentials::{random_secret, secret_hash};
use vigil_vault_core::search::{recording_json, search_as};
use vigil_vault_core::when::TimeRange;
use vigil_vault_store::metadata::{MediaLinkRecord, MetadataStore, RecordingFilter, StoreError};

/// Audit action: a recording was played (target: `session/sequence/kind`).
pub const ACTION_PLAY: &str = "recording.play";
/// Audit action: a recording was downloaded.
pub const ACTION_DOWNLOAD: &str = "recording.download";

/// How long a media link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);

/// Inline (play) or attachment (download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Play,
    Download,
}

/// A media link: for whom, which medium of which segment, to play or to download.
#[derive(Debug, Clone)]
struct MediaLink {
    user: String,
    session: Uuid,
    sequence: u64,
    kind: MediaKind,
    purpose: Purpose,
}

impl Purpose {
    fn disposition(self) -> &'static str {
        match self {
            Purpose::Play => "inline",
            Purpose::Download => "attachment",
        }
    }
}

/// Stores a new link valid for [`LINK_LIFETIME`]; returns its secret (the store keeps only its
/// hash, so every instance sharing the store can serve it).
fn create_link(store: &dyn MetadataStore, link: &MediaLink) -> Result<String, StoreError> {
    let secret = random_secret(32);
    let now = vigil_vault_core::clock::now().unix_timestamp();
    store.insert_media_link(
        &MediaLinkRecord {
            link_sha256: secret_hash(&secret),
            user_name: link.user.clone(),
            session_id: link.session,
            sequence: link.sequence as i64,
            kind: link.kind.as_str().into(),
            disposition: link.purpose.disposition().into(),
            expires_at: now + LINK_LIFETIME.as_secs() as i64,
        },
        now,
    )?;
    Ok(secret)
}

/// The live link with this secret.
fn find_link(store: &dyn MetadataStore, secret: &str) -> Result<Option<MediaLink>, StoreError> {
    let now = vigil_vault_core::clock::now().unix_timestamp();
    let Some(r) = store.media_link(&secret_hash(secret), now)? else {
        return Ok(None);
    };
    let kind = match r.kind.as_str() {
        "voice" => MediaKind::Voice,
        "screen" => MediaKind::Screen,
        _ => return Ok(None),
    };
    let purpose = match r.disposition.as_str() {
        "inline" => Purpose::Play,
        "attachment" => Purpose::Download,
        _ => return Ok(None),
    };
    Ok(Some(MediaLink {
        user: r.user_name,
        session: r.session_id,
        sequence: u64::try_from(r.sequence).unwrap_or_default(),
        kind,
        purpose,
    }))
}

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

/// `GET /v1/recordings`: search entries matching the filters, within the caller's teams.
/// Audited as `recording.search` with the filter.
pub(crate) async fn search(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(p)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "bad query parameters (masked is true or false, policy_version a number)".into(),
        );
    };
    let (from, to) = match TimeRange::parse(p.from.as_deref(), p.to.as_deref()) {
        Ok(range) => range.unix(),
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_time", e.to_string()),
    };
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
    };
    let vault = app.vault.clone();
    let result = blocking(move || search_as(vault.store(), &principal.actor(), &filter)).await;
    match result {
        Some(Ok(found)) => Json(serde_json::json!({
            "recordings": found.iter().map(recording_json).collect::<Vec<_>>()
        }))
        .into_response(),
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

/// The filter as the audit log shows it.

/// The body of a play or download request.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct MediaRequest {
    kind: String,
    reason: Option<String>,
}

/// `POST /v1/recordings/{session}/{sequence}/play`.
pub(crate) async fn play(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<(String, String)>,
    body: Result<Json<MediaRequest>, JsonRejection>,
) -> Response {
    request_link(state, principal, path, body, Purpose::Play).await
}

/// `POST /v1/recordings/{session}/{sequence}/download`.
pub(crate) async fn download(
    state: State<AppState>,
    principal: Extension<Principal>,
    path: Path<(String, String)>,
    body: Result<Json<MediaRequest>, JsonRejection>,
) -> Response {
    request_link(state, principal, path, body, Purpose::Download).await
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such recording".into(),
    )
}

async fn request_link(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((session, sequence)): Path<(String, String)>,
    body: Result<Json<MediaRequest>, JsonRejection>,
    purpose: Purpose,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(r) => return error(StatusCode::BAD_REQUEST, "bad_request", r.body_text()),
    };
    let Ok((session, sequence)) = vigil_vault_core::ingest::parse_ids(&session, &sequence) else {
        return not_found();
    };
    let kind = match body.kind.as_str() {
        "voice" => MediaKind::Voice,
        "screen" => MediaKind::Screen,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_kind",
                "kind is voice or screen".into(),
            )
        }
    };
    if body
        .reason
        .as_deref()
        .is_some_and(|r| r.chars().any(char::is_control) || r.len() > 1000)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_reason",
            "the reason is one line of at most 1000 bytes".into(),
        );
    }
    let Some(reason) = audit::stated_reason(body.reason.as_deref()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "reason_required",
            "state why you play or download this recording (reason)".into(),
        );
    };
    let vault = app.vault.clone();
    let who = principal.clone();
    let checked = blocking(move || {
        let seq = sequence as i64;
        let Some(entry) = vault.store().recording(session, seq)? else {
            return Ok(None);
        };
        let file = vigil_proto::naming::blob_file(sequence, kind);
        if !who.sees_team(entry.team.as_deref())
            || !vault.blobs().exists(session, &file).unwrap_or(false)
        {
            return Ok(None);
        }
        let action = match purpose {
            Purpose::Play => ACTION_PLAY,
            Purpose::Download => ACTION_DOWNLOAD,
        };
        audit::record(
            vault.store(),
            &who.actor(),
            action,
            Some(format!("{session}/{sequence}/{}", kind.as_str())),
            Some(reason),
        )?;
        let link = MediaLink {
            user: who.name.clone(),
            session,
            sequence,
            kind,
            purpose,
        };
        create_link(vault.store(), &link).map(Some)
    })
    .await;
    let secret = match checked {
        Some(Ok(Some(secret))) => secret,
        Some(Ok(None)) => return not_found(),
        Some(Err(e)) => return internal(&e),
        None => return task_failed(),
    };
    Json(serde_json::json!({
        "url": format!("/v1/media/{secret}"),
        "expires_in": LINK_LIFETIME.as_secs(),
        "kind": kind.as_str(),
        "disposition": purpose.disposition(),
    }))
    .into_response()
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

/// `GET /v1/media/{link}`: the decrypted media of a live link made for the caller, streamed.
pub(crate) async fn media(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(secret): Path<String>,
) -> Response {
    let vault = app.vault.clone();
    let opened = blocking(move || {
        let found = find_link(vault.store(), &secret)
            .map_err(|e| e.to_string())?
            .filter(|l| l.user == principal.name);
        let Some(link) = found else {
            return Ok(None);
        };
        let reader = vault
            .open_media(link.session, link.sequence, link.kind)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(Some((link, reader)))
    })
    .await;
    let (link, reader) = match opened {
        Some(Ok(Some(x))) => x,
        Some(Ok(None)) => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such link, or it expired".into(),
            )
        }
        Some(Err(e)) => return internal(&e),
        None => return task_failed(),
    };
    let (content_type, ext) = match link.kind {
        MediaKind::Voice => ("audio/webm", "webm"),
        _ => ("video/x-matroska", "mkv"),
    };
    let disposition = link.purpose.disposition();
    let filename = format!(
        "{}-{:06}.{}.{ext}",
        link.session,
        link.sequence,
        link.kind.as_str()
    );
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("{disposition}; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        stream(reader),
    )
        .into_response()
}
