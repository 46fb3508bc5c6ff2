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

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use uuid::Uuid;
use vigil_proto::{MediaKind, SegmentManifest, SignedManifest};

use crate::access::Principal;
use crate::accounts::{random_secret, secret_hash};
use crate::audit;
use crate::server::{blocking, error, internal, task_failed, AppState};
use crate::store::{
    DeviceRecord, MediaLinkRecord, MetadataStore, RecordingFilter, RecordingRecord, SegmentFilter,
    StoreError,
};
use crate::Vault;

/// Audit action: recordings were searched (target: the filter).
pub const ACTION_SEARCH: &str = "recording.search";
/// Audit action: a recording was played (target: `session/sequence/kind`).
pub const ACTION_PLAY: &str = "recording.play";
/// Audit action: a recording was downloaded.
pub const ACTION_DOWNLOAD: &str = "recording.download";

/// How long a media link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);

fn entry(m: &SegmentManifest, device: Uuid, team: Option<String>, seq: i64) -> RecordingRecord {
    RecordingRecord {
        session_id: m.session_id,
        sequence: seq,
        device_id: device,
        agent: m.user.clone(),
        team,
        call_id: m.call_id.clone(),
        masked: !m.masked_spans.is_empty(),
        start: m.start.wall.unix_timestamp(),
        end: m.end.wall.unix_timestamp(),
        policy_version: i64::try_from(m.policy_version).unwrap_or(i64::MAX),
    }
}

/// Searches the recordings index for `actor`, audited as `recording.search` with the filter
/// (the API and the CLI both come here).
pub fn search_as(
    store: &dyn MetadataStore,
    actor: &str,
    filter: &RecordingFilter,
) -> Result<Vec<RecordingRecord>, StoreError> {
    audit::record(store, actor, ACTION_SEARCH, Some(describe(filter)), None)?;
    store.recordings(filter)
}

/// Writes the search entry of a segment just stored. A failure is logged, not returned: the
/// segment is safely stored and its receipt is due; only search misses it until [`reindex`].
pub(crate) fn index_segment(vault: &Vault, m: &SegmentManifest, device: &DeviceRecord, seq: i64) {
    let record = entry(m, device.id, device.team.clone(), seq);
    if let Err(e) = vault.store().put_recording(&record) {
        tracing::error!(session = %m.session_id, seq, error = %e, "search entry not stored");
    }
}

/// Why the recordings index could not be rebuilt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReindexError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A stored manifest could not be read.
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
}

/// What [`reindex`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Segments given a search entry.
    pub indexed: usize,
    /// Segments whose stored manifest no longer verifies or matches its row (left out, logged).
    pub refused: usize,
}

/// Gives every stored segment without a search entry one, from its stored manifest (checked
/// again: signature, and the digest the segment row holds). For deployments that stored
/// segments before search existed, or after an indexing failure.
pub fn reindex(
    store: &dyn MetadataStore,
    blobs: &dyn crate::blobs::BlobStore,
) -> Result<ReindexReport, ReindexError> {
    let teams: HashMap<Uuid, Option<String>> = store
        .devices()?
        .into_iter()
        .map(|d| (d.id, d.team))
        .collect();
    let mut report = ReindexReport::default();
    for segment in store.segments(&SegmentFilter::default())? {
        if store
            .recording(segment.session_id, segment.sequence)?
            .is_some()
        {
            continue;
        }
        let seq = u64::try_from(segment.sequence).unwrap_or_default();
        let bytes = blobs.get(
            segment.session_id,
            &crate::ingest::file_name(seq, "manifest.json"),
        )?;
        let verified = SignedManifest::verify(&bytes, None)
            .ok()
            .filter(|_| vigil_proto::sha256_hex(&bytes) == segment.manifest_sha256);
        let Some(signed) = verified else {
            tracing::error!(session = %segment.session_id, seq, "stored manifest does not verify; not indexed");
            report.refused += 1;
            continue;
        };
        let team = teams.get(&segment.device_id).cloned().flatten();
        store.put_recording(&entry(
            &signed.manifest,
            segment.device_id,
            team,
            segment.sequence,
        ))?;
        report.indexed += 1;
    }
    Ok(report)
}

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
    let now = crate::now().unix_timestamp();
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
    let now = crate::now().unix_timestamp();
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

/// One search result as the API and the CLI print it.
pub fn recording_json(r: &RecordingRecord) -> serde_json::Value {
    let t = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s)
            .map(crate::rfc3339)
            .unwrap_or_default()
    };
    serde_json::json!({
        "session": r.session_id,
        "sequence": r.sequence,
        "device": r.device_id,
        "agent": r.agent,
        "team": r.team,
        "call_id": r.call_id,
        "masked": r.masked,
        "start": t(r.start),
        "end": t(r.end),
        "policy_version": r.policy_version,
    })
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
    let time = |t: &Option<String>| {
        t.as_deref()
            .map(|s| crate::console::parse_when(s).ok_or(s.to_owned()))
    };
    let (from, to) = match (time(&p.from).transpose(), time(&p.to).transpose()) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(bad), _) | (_, Err(bad)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_time",
                format!("{bad:?} is neither Unix seconds nor RFC 3339"),
            )
        }
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
fn describe(f: &RecordingFilter) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("agent", f.agent.clone());
    add("team", f.team.clone());
    add("scope", f.teams.as_ref().map(|t| t.join(",")));
    add("from", f.from.map(|v| v.to_string()));
    add("to", f.to.map(|v| v.to_string()));
    add("call_id", f.call_id.clone());
    add("masked", f.masked.map(|v| v.to_string()));
    add("policy_version", f.policy_version.map(|v| v.to_string()));
    if parts.is_empty() {
        "all".into()
    } else {
        audit::printable(&parts.join(" "), 1000)
    }
}

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
    let Ok((session, sequence)) = crate::ingest::parse_ids(&session, &sequence) else {
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
        let file = crate::ingest::file_name(sequence, &format!("{}.age", kind.as_str()));
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

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenBlobError {
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("decryption failed: {0}")]
    Decrypt(String),
}

/// A decrypting reader over one sealed blob, held in memory. age authenticates each 64 KiB
/// chunk before the reader returns it, so no unauthenticated plaintext goes out.
fn open_blob(vault: &Vault, link: &MediaLink) -> Result<Box<dyn Read + Send>, OpenBlobError> {
    let file = crate::ingest::file_name(link.sequence, &format!("{}.age", link.kind.as_str()));
    let sealed = vault.blobs().get(link.session, &file)?;
    let decrypt = |e: &dyn std::fmt::Display| OpenBlobError::Decrypt(e.to_string());
    let decryptor = age::Decryptor::new(std::io::Cursor::new(sealed)).map_err(|e| decrypt(&e))?;
    let identity = &vault.keys().recording;
    let reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .map_err(|e| decrypt(&e))?;
    Ok(Box::new(reader))
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
        let found = find_link(vault.store(), &secret)?.filter(|l| l.user == principal.name);
        let Some(link) = found else {
            return Ok(None);
        };
        let reader = open_blob(&vault, &link)?;
        Ok::<_, OpenBlobError>(Some((link, reader)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_describe_themselves() {
        assert_eq!(describe(&RecordingFilter::default()), "all");
        let f = RecordingFilter {
            agent: Some("ann".into()),
            masked: Some(true),
            teams: Some(vec!["north".into()]),
            ..Default::default()
        };
        assert_eq!(describe(&f), "agent=ann scope=north masked=true");
    }
}
