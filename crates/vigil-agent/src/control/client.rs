//! The client side, for `vigil-agent status`, `pause` and `resume` (and integrations written
//! in Rust).

use std::time::Duration;

use super::{AgentState, ControlCommand, ControlEndpoint, ControlRefusal, EndpointError};

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    /// The endpoint files are missing or unreadable.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The agent did not answer.
    #[error("the agent on port {port} does not answer: {detail}")]
    Unreachable {
        /// The published port.
        port: u16,
        /// The transport's reason.
        detail: String,
    },
    /// The agent refused the command.
    #[error("refused: {0}")]
    Refused(ControlRefusal),
    /// The agent refused the secret.
    #[error("the agent refused the control secret")]
    Unauthorized,
    /// The answer was not the API's JSON.
    #[error("unexpected answer from the agent: {0}")]
    Protocol(String),
}

/// Talks to the user's running agent.
pub struct ControlClient {
    endpoint: ControlEndpoint,
    agent: ureq::Agent,
}

impl ControlClient {
    /// A client for the agent that published its endpoint in `folder`.
    pub fn discover(folder: &std::path::Path) -> Result<Self, ControlClientError> {
        let endpoint = ControlEndpoint::discover(folder)?;
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(Self { endpoint, agent })
    }

    /// Sends a command; returns the state the agent applied.
    pub fn send(&self, command: &ControlCommand) -> Result<AgentState, ControlClientError> {
        let base = format!("http://127.0.0.1:{}", self.endpoint.port);
        let auth = self.endpoint.bearer();
        let unreachable = |e: ureq::Error| ControlClientError::Unreachable {
            port: self.endpoint.port,
            detail: e.to_string(),
        };
        let response = match command {
            ControlCommand::State => self
                .agent
                .get(format!("{base}/v1/state"))
                .header("Authorization", &auth)
                .call(),
            ControlCommand::StartMask {
                reason,
                max_seconds,
            } => self
                .agent
                .post(format!("{base}/v1/mask"))
                .header("Authorization", &auth)
                .send_json(serde_json::json!({ "reason": reason, "max_seconds": max_seconds })),
            ControlCommand::EndMask { id } => self
                .agent
                .delete(format!("{base}/v1/mask/{id}"))
                .header("Authorization", &auth)
                .call(),
            ControlCommand::Pause { reason, seconds } => self
                .agent
                .post(format!("{base}/v1/pause"))
                .header("Authorization", &auth)
                .send_json(serde_json::json!({ "reason": reason, "seconds": seconds })),
            ControlCommand::Resume => self
                .agent
                .post(format!("{base}/v1/resume"))
                .header("Authorization", &auth)
                .send_empty(),
            ControlCommand::Extension { app, message } => self
                .agent
                .post(format!("{base}/v1/extension"))
                .header("Authorization", &auth)
                .send_json(serde_json::json!({ "app": app, "message": message })),
            ControlCommand::Extensions { app, messages } => self
                .agent
                .post(format!("{base}/v1/extension"))
                .header("Authorization", &auth)
                .send_json(serde_json::json!({ "app": app, "messages": messages })),
        }
        .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .read_to_string()
            .map_err(|e| ControlClientError::Protocol(e.to_string()))?;
        match status {
            200 => {
                serde_json::from_str(&body).map_err(|e| ControlClientError::Protocol(e.to_string()))
            }
            401 => Err(ControlClientError::Unauthorized),
            _ => Err(serde_json::from_str(&body)
                .map(ControlClientError::Refused)
                .unwrap_or(ControlClientError::Protocol(format!(
                    "HTTP {status}: {body}"
                )))),
        }
    }
}
