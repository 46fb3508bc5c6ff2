//! The HTTP side of the control API, on loopback only:
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/state` | reads the state |
//! | `POST /v1/mask` `{"reason", "max_seconds"?}` | masks screen and voice until ended |
//! | `DELETE /v1/mask/{id}` | ends an API mask |
//! | `POST /v1/pause` `{"reason", "seconds"?}` | manual pause (if allowed), bounded |
//! | `POST /v1/resume` | ends the pause |
//! | `POST /v1/extension` `{"app", "message"}` | a browser extension message (native host) |
//! | `POST /v1/extension` `{"app", "messages": […]}` | extension messages, applied in order |
//!
//! Every request needs `Authorization: Bearer <secret>`; every answer is the applied state as
//! JSON, or `{"refused": …}` with a 4xx/5xx status. An extension report the engine has not
//! taken within 20 ms is answered with the state last read back (it is applied in order all
//! the same): the native host sends one request at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use serde::Deserialize;

use super::{ControlCommand, ControlEndpoint, ControlRefusal, ControlRequest, EndpointError};

/// How long a request waits for the engine (it answers within one loop turn, ~20 ms).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a browser extension's report waits for the engine's answer before it is answered
/// with the state last read back. The engine takes the report in order all the same; its
/// native host, which sends one report at a time, is not held while the engine encodes a
/// frame (each waiting report would add that wait to those behind it).
const EXTENSION_WAIT: Duration = Duration::from_millis(20);
/// Bodies are a few fields of JSON.
const MAX_BODY: u64 = 16 * 1024;

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The loopback port could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {detail}")]
    Bind {
        /// The configured port.
        port: u16,
        /// The system's reason.
        detail: String,
    },
    /// The endpoint files could not be written.
    #[error("cannot publish the control endpoint")]
    Endpoint(#[from] EndpointError),
}

/// The running API; stops and withdraws its endpoint files when dropped.
pub struct ControlServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    folder: std::path::PathBuf,
    port: u16,
}

impl ControlServer {
    /// Listens on `127.0.0.1:port` (0: any free port), publishes the port and a fresh secret in
    /// `folder`, and forwards authorised commands to `engine`.
    pub fn start(
        port: u16,
        folder: &std::path::Path,
        engine: Sender<ControlRequest>,
    ) -> Result<Self, ServeError> {
        let bind_error = |detail: String| ServeError::Bind { port, detail };
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| bind_error(e.to_string()))?;
        // Answers go out at once: tiny_http writes an answer longer than its 1-KB buffer in
        // two pieces, and with Nagle's algorithm the second waited for the client's delayed
        // acknowledgement (40 ms a message: the browser extension's reports, relayed one at
        // a time, fell more than a second behind). Accepted connections inherit the option.
        socket2::SockRef::from(&listener)
            .set_tcp_nodelay(true)
            .map_err(|e| bind_error(e.to_string()))?;
        let server = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| bind_error(e.to_string()))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .unwrap_or(port);
        let endpoint = ControlEndpoint::publish(folder, port)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("control-api".into())
            .spawn(move || {
                let mut last_state = None;
                while !flag.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(200)) {
                        Ok(Some(request)) => handle(request, &endpoint, &engine, &mut last_state),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "control API stopped");
                            return;
                        }
                    }
                }
            })
            .map_err(|e| ServeError::Bind {
                port,
                detail: e.to_string(),
            })?;
        tracing::info!(port, "control API listening on loopback");
        Ok(Self {
            stop,
            thread: Some(thread),
            folder: folder.to_path_buf(),
            port,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        ControlEndpoint::withdraw(&self.folder);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaskBody {
    reason: String,
    max_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtensionBody {
    app: Option<String>,
    #[serde(default)]
    message: Option<Box<super::ExtensionMessage>>,
    #[serde(default)]
    messages: Option<Vec<super::ExtensionMessage>>,
}

/// The most messages one request may carry (the native host sends at most 50).
const MAX_MESSAGES: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    reason: String,
    seconds: Option<u64>,
}

fn handle(
    mut request: tiny_http::Request,
    endpoint: &ControlEndpoint,
    engine: &Sender<ControlRequest>,
    last_state: &mut Option<super::AgentState>,
) {
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let (status, body) = if !endpoint.admits(authorization.as_deref()) {
        tracing::warn!(url = %request.url(), "control API: caller without the secret refused");
        (401, r#"{"refused":"unauthorized"}"#.to_string())
    } else {
        let mut text = String::new();
        let read = std::io::Read::read_to_string(
            &mut std::io::Read::take(request.as_reader(), MAX_BODY),
            &mut text,
        );
        let command = match read {
            Ok(_) => parse(request.method(), request.url(), &text),
            Err(e) => Err(ControlRefusal::BadRequest {
                detail: e.to_string(),
            }),
        };
        match command.and_then(|c| ask(engine, c, last_state)) {
            Ok(state) => (200, serde_json::to_string(&state).unwrap_or_default()),
            Err(refusal) => (
                status_of(&refusal),
                serde_json::to_string(&refusal).unwrap_or_default(),
            ),
        }
    };
    let response = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json")
                .expect("static header"),
        );
    let _ = request.respond(response);
}

pub(super) fn parse(
    method: &tiny_http::Method,
    url: &str,
    body: &str,
) -> Result<ControlCommand, ControlRefusal> {
    use tiny_http::Method::{Delete, Get, Post};
    let bad = |e: serde_json::Error| ControlRefusal::BadRequest {
        detail: e.to_string(),
    };
    match (method, url) {
        (Get, "/v1/state") => Ok(ControlCommand::State),
        (Post, "/v1/mask") => {
            let b: MaskBody = serde_json::from_str(body).map_err(bad)?;
            Ok(ControlCommand::StartMask {
                reason: b.reason,
                max_seconds: b.max_seconds,
            })
        }
        (Post, "/v1/pause") => {
            let b: PauseBody = serde_json::from_str(body).map_err(bad)?;
            Ok(ControlCommand::Pause {
                reason: b.reason,
                seconds: b.seconds,
            })
        }
        (Post, "/v1/resume") => Ok(ControlCommand::Resume),
        (Post, "/v1/extension") => {
            let b: ExtensionBody = serde_json::from_str(body).map_err(bad)?;
            match (b.message, b.messages) {
                (Some(message), None) => Ok(ControlCommand::Extension {
                    app: b.app,
                    message,
                }),
                (None, Some(messages)) if (1..=MAX_MESSAGES).contains(&messages.len()) => {
                    Ok(ControlCommand::Extensions {
                        app: b.app,
                        messages,
                    })
                }
                _ => Err(ControlRefusal::BadRequest {
                    detail: format!(
                        "an extension request carries \"message\" or 1 to {MAX_MESSAGES} \"messages\""
                    ),
                }),
            }
        }
        (Delete, path) => path
            .strip_prefix("/v1/mask/")
            .and_then(|id| id.parse().ok())
            .map(|id| ControlCommand::EndMask { id })
            .ok_or_else(|| ControlRefusal::BadRequest {
                detail: format!("no such resource: {path}"),
            }),
        (_, path) => Err(ControlRefusal::BadRequest {
            detail: format!("no such resource: {method} {path}"),
        }),
    }
}

fn ask(
    engine: &Sender<ControlRequest>,
    command: ControlCommand,
    last_state: &mut Option<super::AgentState>,
) -> Result<super::AgentState, ControlRefusal> {
    let (reply, answer) = crossbeam_channel::bounded(1);
    let asked = std::time::Instant::now();
    let report = matches!(
        command,
        ControlCommand::Extension { .. } | ControlCommand::Extensions { .. }
    );
    engine
        .send(ControlRequest { command, reply })
        .map_err(|_| ControlRefusal::NotRecording)?;
    if report {
        if let Some(state) = last_state.as_ref() {
            if let Ok(answered) = answer.recv_timeout(EXTENSION_WAIT) {
                return remember(answered, last_state);
            }
            tracing::trace!("extension report answered before the engine took it");
            return Ok(state.clone());
        }
    }
    let answered = answer
        .recv_timeout(ENGINE_TIMEOUT)
        .map_err(|_| ControlRefusal::NotRecording)?;
    tracing::trace!(ms = asked.elapsed().as_millis() as u64, "engine answered");
    remember(answered, last_state)
}

/// Keeps the state an answer read back (for extension reports the engine is slow to take).
fn remember(
    answered: Result<super::AgentState, ControlRefusal>,
    last_state: &mut Option<super::AgentState>,
) -> Result<super::AgentState, ControlRefusal> {
    if let Ok(state) = &answered {
        *last_state = Some(state.clone());
    }
    answered
}

fn status_of(refusal: &ControlRefusal) -> u16 {
    match refusal {
        ControlRefusal::PauseNotAllowed | ControlRefusal::PauseBudgetSpent { .. } => 403,
        ControlRefusal::NoSuchMask { .. } => 404,
        ControlRefusal::BadRequest { .. } => 400,
        ControlRefusal::NotRecording => 503,
    }
}
