//! The HTTPS API: axum over hyper, TLS by rustls (ring provider) with the deployment's server
//! certificate.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /health` | | 200 `{"status":"ok"}`, 503 when the metadata store fails |
//! | `GET /metrics` | | 200 Prometheus text ([`crate::metrics`]) |
//! | `POST /v1/enroll` | [`EnrollRequest`] JSON | 200 [`vigil_vault_core::enroll::EnrollResponse`]; 400, 401 (token), 403 (revoked key) |
//! | `POST /v1/heartbeat` | [`vigil_proto::api::SignedHeartbeat`] JSON | 200; 400, 403 |
//! | `GET /v1/policy/{scope}` | (policy; supervisors: their teams) | 200 `{"scope","version","layer","history"}`; 400, 403 |
//! | `PUT /v1/policy/{scope}` | (policy; supervisors: their teams) `{"layer","reason"}` | 200 `{"version","devices_affected"}`; 400, 403, 404, 422 |
//! | `GET /v1/agents` | (search; supervisors: their teams) | 200 every device's live state |
//! | `POST /v1/policy/poll` | [`vigil_proto::api::SignedPolicyPoll`] JSON | 200 the device's signed policy when newer than `after`; 204 after the wait; 400, 403 |
//! | `GET /v1/gaps[?session=ID]` | (devices) | 200 gap report per session; 401, 403 |
//! | `GET /v1/devices` | (devices) | 200 enrolled devices |
//! | `PUT /v1/segments/{session}/{sequence}` | [`vigil_proto::frame`] body | 201 receipt (200 for a duplicate); 400, 403, 409, 413, 422 |
//! | `GET /openapi.json` | | 200 the API's OpenAPI 3.1 description ([`crate::openapi`]) |
//! | `POST /v1/login` | `{"name","password"}` | 200 `{"csrf_token",…}` + `vigil_session` cookie; 401, 429 |
//! | `POST /v1/logout` | (any account) | 200, the session ends |
//! | `GET /v1/me` | (any account) | 200 name, role, teams, permissions |
//! | `POST /v1/password` | (any account) `{"current","new"}` | 200; 400 (weak), 401, 429 |
//! | `GET /v1/users` | (users) | 200 accounts |
//! | `POST /v1/users` | (users) `{"name","role","teams","password"?}` | 201; 400, 409 |
//! | `PATCH /v1/users/{name}` | (users) `{"role"?,"teams"?,"disabled"?,"reason"?}` | 200 the account; 400, 404 |
//! | `GET /v1/audit?actor=&action=&target=&from=&to=&after=&limit=` | (audit) | 200 records |
//! | `GET /v1/recordings?agent=&team=&from=&to=&call_id=&masked=&limit=` | (search) | 200 segments; audited |
//! | `POST /v1/recordings/{session}/{sequence}/play` | (play) `{"kind","reason"}` | 200 `{"url",…}` a 60 s link; 400, 404 |
//! | `POST /v1/recordings/{session}/{sequence}/download` | (download) `{"kind","reason"}` | 200 `{"url",…}`; 400, 404 |
//! | `GET /v1/media/{link}` | (the account that asked) | 200 decrypted media, streamed; 404 |
//! | `GET /v1/holds[?all=true]` | (hold) | 200 the active holds (or all) |
//! | `POST /v1/holds` | (hold) `{"case","reason","sessions"?,"devices"?:[id or {"device","from","to"}],"ranges"?:[{"from","to"}]}` | 201 the hold; 400 |
//! | `POST /v1/holds/{id}/release` | (hold) `{"reason"}` | 200 the hold; 400, 404, 409 (released before) |
//! | `POST /v1/redactions` | (redact) `{"case","reason","session"?,"device"?,"from","to"}` | 200 segments, blob and tombstone digests; 400, 404 (nothing in range), 409 (held) |
//! | `GET /v1/tombstones/{segment}` | (redact or audit) | 200 the signed tombstone as stored; 404 |
//! | `DELETE /v1/recordings/{session}` | (delete) `{"reason","case"?}` or `?reason=` | 200 as a redaction of the whole session; 400, 404, 409 (held) |
//!
//! "(permission)": the caller authenticates (session cookie with `X-CSRF-Token` on POST,
//! `Authorization: Bearer <API token>`, or `Authorization: Basic`) and its role holds the
//! permission ([`vigil_vault_core::access`]); else 401 or 403.
//!
//! Errors are JSON: `{"error": "<code>", "detail": "<text>"}`, unknown paths included.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use age::secrecy::ExposeSecret;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;
use vigil_vault_core::enroll::{EnrollError, EnrollRequest};
use vigil_vault_core::ingest::IngestError;
use vigil_vault_core::Vault;

/// What every handler sees.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) vault: Arc<Vault>,
    pub(crate) metrics: Arc<Metrics>,
    /// Failed password attempts ([`vigil_vault_core::api_auth::Throttle`]).
    pub(crate) throttle: Arc<vigil_vault_core::api_auth::Throttle>,
    /// The policy snapshot and its change notifications ([`vigil_vault_core::policy_push`]).
    pub(crate) policy: vigil_vault_core::policy_push::PolicyHub,
}

/// The client's address, attached to each request by the connection loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);

/// The largest upload body accepted by default (64 MiB; a 10 s segment is a few MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

/// How the server listens.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Largest accepted upload body; larger ones get 413.
    pub max_body_bytes: usize,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The certificate or key could not be loaded.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The policy could not be loaded from the metadata store.
    #[error("policy: {0}")]
    Policy(#[source] vigil_vault_store::metadata::StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Builds the rustls configuration from the deployment's certificate chain and key.
pub fn tls_config(vault: &Vault) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let chain_path = vault.layout().server_cert();
    let chain = CertificateDer::pem_file_iter(&chain_path)
        .map_err(|e| tls(&format!("{}: {e}", chain_path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls(&e))?;
    let key = PrivateKeyDer::from_pem_slice(vault.tls_server_key().expose_secret().as_bytes())
        .map_err(|e| tls(&e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) fn error(status: StatusCode, code: &str, detail: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "detail": detail })),
    )
        .into_response()
}

pub(crate) fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "internal error");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
    )
}

/// Runs blocking work (SQLite, files, signatures) off the async workers; `None` if it panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::error!(error = %e, "request task failed");
            None
        }
    }
}

pub(crate) fn task_failed() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
    )
}

async fn health(State(app): State<AppState>) -> Response {
    match blocking(move || app.vault.store().ping()).await {
        Some(Ok(())) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Some(Err(e)) => {
            tracing::error!(error = %e, "health check failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "metadata store unavailable".into(),
            )
        }
        None => task_failed(),
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let vault = app.vault.clone();
    let figures = blocking(move || vigil_vault_core::gaps::gaps(vault.store(), None))
        .await
        .and_then(|r| r.ok())
        .map(|all| {
            let count = |r: &[(i64, i64)]| r.iter().map(|(a, b)| (b - a + 1) as u64).sum::<u64>();
            let mut f = crate::metrics::GapFigures::default();
            for g in &all {
                f.in_transit += count(&g.in_transit);
                f.lost += count(&g.lost);
                if !g.reported {
                    f.unreported += count(&g.missing);
                }
            }
            f
        })
        .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render_with_gaps(figures),
    )
        .into_response()
}

async fn heartbeat(State(app): State<AppState>, body: Bytes) -> Response {
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::heartbeat::record_heartbeat(&vault, &body)).await {
        Some(Ok(accepted)) => {
            app.metrics.heartbeat(accepted.device_id, accepted.backlog);
            Json(serde_json::json!({ "status": "ok", "sessions": accepted.sessions }))
                .into_response()
        }
        Some(Err(e)) => {
            app.metrics.heartbeat_refused(e.code());
            let status = match &e {
                vigil_vault_core::heartbeat::HeartbeatRefusal::Envelope(
                    vigil_proto::api::HeartbeatError::BadSignature,
                )
                | vigil_vault_core::heartbeat::HeartbeatRefusal::UnknownDevice
                | vigil_vault_core::heartbeat::HeartbeatRefusal::Revoked(_) => {
                    StatusCode::FORBIDDEN
                }
                vigil_vault_core::heartbeat::HeartbeatRefusal::Store(_) => return internal(&e),
                _ => StatusCode::BAD_REQUEST,
            };
            tracing::warn!(code = e.code(), error = %e, "heartbeat refused");
            error(status, e.code(), e.to_string())
        }
        None => task_failed(),
    }
}

async fn policy_poll(State(app): State<AppState>, body: Bytes) -> Response {
    use vigil_vault_core::policy_push::{answer_poll, check_poll, PollRefusal};
    let vault = app.vault.clone();
    let refused = |e: PollRefusal| {
        let status = match &e {
            PollRefusal::BadSignature | PollRefusal::UnknownDevice | PollRefusal::Revoked(_) => {
                StatusCode::FORBIDDEN
            }
            PollRefusal::Malformed(_) | PollRefusal::Stale(_) => StatusCode::BAD_REQUEST,
            PollRefusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            PollRefusal::Store(_) => return internal(&e),
        };
        tracing::warn!(code = e.code(), error = %e, "policy poll refused");
        error(status, e.code(), e.to_string())
    };
    let checked = match blocking(move || check_poll(&vault, &body)).await {
        Some(Ok(c)) => c,
        Some(Err(e)) => return refused(e),
        None => return task_failed(),
    };
    match answer_poll(&app.vault, &app.policy, checked).await {
        Ok(Some(signed)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            signed,
        )
            .into_response(),
        Ok(None) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

#[derive(serde::Deserialize)]
struct GapsQuery {
    session: Option<uuid::Uuid>,
}

async fn gaps(
    State(app): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<GapsQuery>,
) -> Response {
    let vault = app.vault.clone();
    let result = blocking(move || vigil_vault_core::gaps::gaps(vault.store(), query.session)).await;
    match result {
        Some(Ok(all)) => {
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
            Json(serde_json::json!({ "sessions": sessions })).into_response()
        }
        Some(Err(e)) => internal(&e),
        None => task_failed(),
    }
}

async fn enroll(State(app): State<AppState>, Json(request): Json<EnrollRequest>) -> Response {
    let vault = app.vault.clone();
    match blocking(move || vigil_vault_core::enroll::enroll(&vault, &request)).await {
        Some(Ok(answer)) => {
            app.metrics.enrolled();
            Json(answer).into_response()
        }
        Some(Err(e)) => {
            let (status, code) = match &e {
                EnrollError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                EnrollError::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
                EnrollError::Revoked => (StatusCode::FORBIDDEN, "revoked_device"),
                EnrollError::Store(e) => return internal(e),
            };
            tracing::warn!(error = %e, "enrollment refused");
            app.metrics.enroll_refused(code);
            let detail = match &e {
                EnrollError::InvalidToken(_) => "invalid or expired enrollment token".into(),
                _ => e.to_string(),
            };
            error(status, code, detail)
        }
        None => task_failed(),
    }
}

fn ingest_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::BadId(_)
        | IngestError::Body(_)
        | IngestError::Malformed(_)
        | IngestError::Mismatch(_) => StatusCode::BAD_REQUEST,
        IngestError::BadSignature(_)
        | IngestError::UnknownDevice(_)
        | IngestError::Revoked(_)
        | IngestError::WrongDevice(_) => StatusCode::FORBIDDEN,
        IngestError::Conflict(_) | IngestError::ChainBroken(_) => StatusCode::CONFLICT,
        IngestError::BlobMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn put_segment(
    State(app): State<AppState>,
    Path((session, sequence)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let cause = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "body_unreadable"
            };
            tracing::warn!(cause, "segment upload refused: {rejection}");
            app.metrics.rejected(cause);
            return error(rejection.status(), cause, rejection.body_text());
        }
    };
    let size = body.len();
    let vault = app.vault.clone();
    let result =
        blocking(move || vigil_vault_core::ingest::ingest(&vault, &session, &sequence, &body))
            .await;
    match result {
        Some(Ok(accepted)) => {
            let status = if accepted.duplicate {
                app.metrics.duplicate();
                StatusCode::OK
            } else {
                app.metrics.stored(size);
                StatusCode::CREATED
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                accepted.receipt,
            )
                .into_response()
        }
        Some(Err(e)) => {
            let status = ingest_status(&e);
            app.metrics.rejected(e.code());
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                return internal(&e);
            }
            tracing::warn!(code = e.code(), error = %e, "segment refused");
            error(status, e.code(), e.to_string())
        }
        None => task_failed(),
    }
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::OPENAPI_JSON,
    )
        .into_response()
}

/// Unknown paths answer in JSON like every other refusal. A segment path of the wrong shape
/// (`/v1/segments/../../etc/1`) is an upload refused for its ids.
async fn not_found(State(app): State<AppState>, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/v1/segments/") {
        app.metrics.rejected("bad_id");
        return error(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "segment path must be /v1/segments/{session}/{sequence}".into(),
        );
    }
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such resource".into(),
    )
}

/// The API's routes. Every one has its access rule in [`vigil_vault_core::access::ROUTES`], enforced by
/// the guard in `console.rs` before the handler runs.
pub fn router(
    vault: Arc<Vault>,
    policy: vigil_vault_core::policy_push::PolicyHub,
    max_body_bytes: usize,
) -> Router {
    let state = AppState {
        vault,
        metrics: Arc::new(Metrics::default()),
        throttle: Arc::default(),
        policy,
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/enroll", post(enroll))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/policy/poll", post(policy_poll))
        .route(
            "/v1/policy/{scope}",
            get(crate::policy_api::get_policy).put(crate::policy_api::put_policy),
        )
        .route("/v1/agents", get(crate::policy_api::agents))
        .route("/v1/gaps", get(gaps))
        .route("/v1/devices", get(crate::console::devices))
        .route(
            "/v1/segments/{session}/{sequence}",
            put(put_segment).layer(DefaultBodyLimit::max(max_body_bytes)),
        )
        .route("/v1/login", post(crate::console::login))
        .route("/v1/logout", post(crate::console::logout))
        .route("/v1/me", get(crate::console::me))
        .route("/v1/password", post(crate::console::change_password))
        .route(
            "/v1/users",
            get(crate::console::list_users).post(crate::console::add_user),
        )
        .route("/v1/users/{name}", patch(crate::console::change_user))
        .route("/v1/audit", get(crate::console::audit))
        .route("/v1/recordings", get(crate::recordings::search))
        .route(
            "/v1/recordings/{session}/{sequence}/play",
            post(crate::recordings::play),
        )
        .route(
            "/v1/recordings/{session}/{sequence}/download",
            post(crate::recordings::download),
        )
        .route("/v1/media/{link}", get(crate::recordings::media))
        .route(
            "/v1/recordings/{session}",
            delete(crate::lifecycle_api::delete_recording),
        )
        .route(
            "/v1/holds",
            get(crate::lifecycle_api::list_holds).post(crate::lifecycle_api::add_hold),
        )
        .route(
            "/v1/holds/{id}/release",
            post(crate::lifecycle_api::release_hold),
        )
        .route("/v1/redactions", post(crate::lifecycle_api::redact))
        .route(
            "/v1/tombstones/{segment}",
            get(crate::lifecycle_api::tombstone),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::console::guard,
        ))
        .fallback(not_found)
        .with_state(state)
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
}

impl Server {
    /// Loads TLS and binds the address.
    pub async fn bind(vault: Arc<Vault>, options: &ServeOptions) -> Result<Self, ServeError> {
        let acceptor = TlsAcceptor::from(tls_config(&vault)?);
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let policy = vigil_vault_core::policy_push::PolicyHub::start(vault.clone())
            .await
            .map_err(ServeError::Policy)?;
        Ok(Self {
            listener,
            acceptor,
            app: router(vault, policy, options.max_body_bytes),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes. Connections in flight are dropped then: ingest keeps
    /// no state that a cut request could corrupt.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = self.acceptor.clone();
            let app = self.app.clone().layer(axum::Extension(ClientAddr(peer)));
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let mut builder = auto::Builder::new(TokioExecutor::new());
                // A client that does not finish its request headers in time is dropped.
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(30));
                let served = builder
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    }
}
