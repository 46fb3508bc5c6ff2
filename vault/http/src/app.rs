//! What every handler sees.

use std::net::SocketAddr;
use std::sync::Arc;

use vigil_vault_core::api_auth::Throttle;
use vigil_vault_core::policy_push::PolicyHub;
use vigil_vault_core::Vault;

use crate::metrics::Metrics;

/// The state shared by every handler.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) vault: Arc<Vault>,
    pub(crate) metrics: Arc<Metrics>,
    /// Failed password attempts.
    pub(crate) throttle: Arc<Throttle>,
    /// The policy snapshot and its change notifications.
    pub(crate) policy: PolicyHub,
    /// Segment uploads per device.
    pub(crate) upload_rate: Arc<vigil_vault_core::upload_gate::UploadRate>,
    /// The largest upload body read.
    pub(crate) max_body_bytes: usize,
    /// Where upload bodies stream to while they arrive.
    pub(crate) incoming: std::path::PathBuf,
    /// Received uploads being verified and stored at once (each one's body in memory).
    pub(crate) ingest_slots: Arc<tokio::sync::Semaphore>,
    /// Rung after every accepted heartbeat: live views recompute the agents' state.
    pub(crate) live_changed: Arc<tokio::sync::Notify>,
}

/// The client's address, attached to each request by the connection loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) SocketAddr);
