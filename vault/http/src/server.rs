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
//! | `POST /v1/login` | `{"name","password"}` | 200 `{"csrf_token",…}` + `__Host-vigil_session` cookie; 401, 429 |
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
use axum::routing::{get, patch, post, put};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use vigil_vault_core::Vault;

use crate::app::{AppState, ClientAddr};
use crate::guard::{guard, security_headers};
use crate::metrics::Metrics;
use crate::routes::{agents, audit, holds, policy, recordings, redactions, session, system, users};

/// The largest upload body accepted by default (64 MiB; a 10 s segment is a few MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;

/// How the server listens.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Largest accepted upload body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Longest a request may take, body included (408 after it): a client that trickles its
    /// body holds nothing for longer. Long polls wait less than this.
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused at once (503 with `Retry-After`) rather
    /// than queued until memory runs out.
    pub max_in_flight: usize,
    /// Segment uploads one device may make per second on average (0: no limit)...
    pub device_uploads_per_second: f64,
    /// ...and at once after a quiet spell (a backlog after an outage drains at this pace).
    pub device_upload_burst: u32,
    /// Uploads of one device in flight at once (0: no cap).
    pub device_uploads_in_flight: usize,
    /// Uploads verified and stored at once: each holds its body in memory, so this bounds the
    /// memory of ingest however many uploads are arriving (they stream to `incoming/`).
    pub ingest_concurrency: usize,
}

/// The default [`ServeOptions::ingest_concurrency`]: twice the cores, at least 4.
pub fn default_ingest_concurrency() -> usize {
    std::thread::available_parallelism().map_or(4, |n| (n.get() * 2).max(4))
}

/// The default [`ServeOptions::device_uploads_per_second`]: an agent makes one segment every
/// few seconds; a backlog drains at two uploads in flight.
pub const DEFAULT_DEVICE_UPLOADS_PER_SECOND: f64 = 20.0;
/// The default [`ServeOptions::device_upload_burst`].
pub const DEFAULT_DEVICE_UPLOAD_BURST: u32 = 100;

/// The default [`ServeOptions::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The default [`ServeOptions::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Concurrent HTTP/2 streams per connection (one client cannot open thousands at once).
const MAX_STREAMS_PER_CONNECTION: u32 = 64;

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
    /// The folder upload bodies stream to could not be prepared.
    #[error("{}: {source}", path.display())]
    Incoming {
        /// The folder.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
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

/// The API's routes. Every one has its access rule in [`vigil_vault_core::access::ROUTES`], enforced by
/// the guard ([`crate::guard`]) before the handler runs.
pub fn router(
    vault: Arc<Vault>,
    policy: vigil_vault_core::policy_push::PolicyHub,
    options: &ServeOptions,
) -> Result<Router, ServeError> {
    let max_body_bytes = options.max_body_bytes;
    let incoming = vault.layout().incoming();
    crate::upload_body::prepare_incoming(&incoming).map_err(|source| ServeError::Incoming {
        path: incoming.clone(),
        source,
    })?;
    let limits = crate::limits::Limits::new(options.request_timeout, options.max_in_flight);
    let state = AppState {
        vault,
        metrics: Arc::new(Metrics::default()),
        throttle: Arc::default(),
        policy,
        upload_rate: Arc::new(vigil_vault_core::upload_gate::UploadRate::with_in_flight(
            options.device_uploads_per_second,
            options.device_upload_burst,
            options.device_uploads_in_flight,
        )),
        max_body_bytes,
        incoming: incoming.clone(),
        ingest_slots: Arc::new(tokio::sync::Semaphore::new(
            options.ingest_concurrency.max(1),
        )),
        live_changed: Arc::new(tokio::sync::Notify::new()),
    };
    Ok(Router::new()
        .route("/", get(crate::console::index))
        .route("/app.js", get(crate::console::script))
        .route("/app.css", get(crate::console::style))
        .route("/health", get(system::health))
        .route("/metrics", get(system::metrics))
        .route("/openapi.json", get(system::openapi))
        .route("/v1/enroll", post(agents::enroll))
        .route("/v1/heartbeat", post(agents::heartbeat))
        .route("/v1/devices/rekey", post(agents::rekey))
        .route("/v1/policy/poll", post(agents::policy_poll))
        .route(
            "/v1/policy/{scope}",
            get(policy::get_policy).put(policy::put_policy),
        )
        .route("/v1/agents", get(policy::agents))
        .route("/v1/agents/events", get(crate::routes::live::agent_events))
        .route("/v1/gaps", get(agents::gaps))
        .route("/v1/devices", get(audit::devices))
        .route(
            "/v1/segments/{session}/{sequence}",
            put(agents::put_segment),
        )
        .route("/v1/login", post(session::login))
        .route("/v1/logout", post(session::logout))
        .route("/v1/me", get(session::me))
        .route("/v1/password", post(session::change_password))
        .route("/v1/mfa/totp", post(session::begin_totp))
        .route("/v1/mfa/totp/confirm", post(session::confirm_totp))
        .route("/v1/users", get(users::list_users).post(users::add_user))
        .route("/v1/users/{name}", patch(users::change_user))
        .route("/v1/grants", get(users::grant_requests))
        .route("/v1/grants/{id}/approve", post(users::approve_grant))
        .route("/v1/grants/{id}/reject", post(users::reject_grant))
        .route("/v1/audit", get(audit::audit))
        .route("/v1/recordings", get(recordings::search))
        .route(
            "/v1/recordings/{session}/{sequence}/play",
            post(recordings::play),
        )
        .route(
            "/v1/recordings/{session}/{sequence}/download",
            post(recordings::download),
        )
        .route("/v1/media/{link}", get(recordings::media))
        .route(
            "/v1/recordings/{session}",
            get(recordings::session).delete(redactions::delete_recording),
        )
        .route("/v1/holds", get(holds::list_holds).post(holds::add_hold))
        .route("/v1/holds/{id}/release", post(holds::release_hold))
        .route("/v1/redactions", post(redactions::redact))
        .route("/v1/tombstones/{segment}", get(redactions::tombstone))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .fallback(system::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::origin::stamp,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limits,
            crate::limits::enforce,
        ))
        .with_state(state))
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
            app: router(vault, policy, options)?,
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
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
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
