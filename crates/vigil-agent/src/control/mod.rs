//! The local control API (brief §5): CTI and CRM integrations start and end masks, the agent
//! pauses and resumes, and anyone with the per-user secret reads the state. It listens on
//! loopback only; every answer is the state the recording engine applied, read back from the
//! mask timeline after the change, never an assumed one.

mod client;
mod endpoint;
mod extension;
#[cfg(test)]
mod fuzz;
mod server;
mod state;

pub use client::{ControlClient, ControlClientError};
pub use endpoint::{ControlEndpoint, EndpointError};
pub(crate) use extension::ExtensionLink;
pub use extension::{ExtensionMessage, FieldReport};
pub use server::{ControlServer, ServeError};
pub use state::{ActiveMask, AgentState, HeldFieldState, PauseState, TriggerHealth};

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

/// What a caller asks the engine to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum ControlCommand {
    /// Read the state.
    State,
    /// Mask screen and voice from now until ended (or for at most `max_seconds`).
    StartMask {
        /// Why (shown on the banner and in the manifest; digits are never drawn).
        reason: String,
        /// Upper bound, after which the mask ends by itself.
        max_seconds: Option<u64>,
    },
    /// End a mask started through the API.
    EndMask {
        /// The id `StartMask` returned in `AgentState::api_masks`.
        id: u64,
    },
    /// The agent's manual pause: screen and voice masked until resumed or the maximum passed.
    Pause {
        /// Why (logged and kept in the manifest).
        reason: String,
        /// Requested length; capped by the configured maximum.
        seconds: Option<u64>,
    },
    /// Ends the pause.
    Resume,
    /// A message of the browser extension, relayed by its native-messaging host.
    Extension {
        /// The browser the host runs under (`chromium`, `firefox` …), when known.
        app: Option<String>,
        /// The message (boxed: field descriptions are larger than every other command).
        message: Box<ExtensionMessage>,
    },
    /// Messages of the browser extension that arrived together, applied in order.
    Extensions {
        /// The browser the host runs under, when known.
        app: Option<String>,
        /// The messages, oldest first.
        messages: Vec<ExtensionMessage>,
    },
}

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "refused", rename_all = "snake_case")]
pub enum ControlRefusal {
    /// Manual pause is off in the configuration.
    #[error("manual pause is not allowed by the configuration")]
    PauseNotAllowed,
    /// Today's pause budget (policy `pause_daily_budget_seconds`) is spent.
    #[error("today's pause budget of {budget_seconds} s is spent")]
    PauseBudgetSpent {
        /// The daily budget.
        budget_seconds: u64,
    },
    /// No API mask has that id (or it already ended).
    #[error("no mask with id {id}")]
    NoSuchMask {
        /// The id asked for.
        id: u64,
    },
    /// The request was malformed.
    #[error("bad request: {detail}")]
    BadRequest {
        /// What was wrong.
        detail: String,
    },
    /// No recording engine answers (the agent is stopping).
    #[error("the recording engine is not running")]
    NotRecording,
}

/// A command on its way to the engine, with where to send the applied state.
#[derive(Debug)]
pub struct ControlRequest {
    /// The command.
    pub command: ControlCommand,
    /// Gets the state after the command was applied, or why it was refused.
    pub reply: Sender<Result<AgentState, ControlRefusal>>,
}
