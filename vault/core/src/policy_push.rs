//! Pushing policy to agents by long poll (`POST /v1/policy/poll`): each agent keeps one
//! request open naming the version it holds; the vault answers as soon as the device's
//! effective policy has a newer version, signed for that device, or with 204 when the wait
//! runs out.
//!
//! Changes may come from this server's API (which nudges the hub at once), from
//! `vigil-vault policy set` in a shell, or from another vault instance on the same PostgreSQL:
//! the [`PolicyHub`] watches the store's newest version (one cheap query every
//! [`WATCH_PERIOD`]), reloads every layer once per change and wakes every waiting request through a `tokio::sync::watch` channel. Waiting
//! requests resolve from that in-memory snapshot: a change reaches a thousand connected
//! agents without a thousand database reads.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use vigil_proto::api::SignedPolicyPoll;

use crate::policy::{sign_for, PolicySnapshot};
use crate::Vault;
use vigil_vault_store::metadata::StoreError;

/// How often the hub checks the store for a new policy version.
pub const WATCH_PERIOD: Duration = Duration::from_millis(200);
/// The longest a poll is held.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// How far a poll's `sent_at` may be from the vault's clock.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// Why a poll was refused.
#[derive(Debug, thiserror::Error)]
pub enum PollRefusal {
    /// Not a signed poll, or a malformed one.
    #[error("malformed policy poll: {0}")]
    Malformed(String),
    /// The signature does not verify.
    #[error("policy poll signature does not verify")]
    BadSignature,
    /// The signer is not the enrolled key of the device the poll names.
    #[error("unknown device")]
    UnknownDevice,
    /// The device was revoked.
    #[error("device {0} is revoked")]
    Revoked(uuid::Uuid),
    /// The poll's time is too far from the vault's (a replayed or misdated poll).
    #[error("policy poll sent at {0}, too far from the vault's clock")]
    Stale(i64),
    /// The stored policy no longer resolves for this device.
    #[error("policy unavailable: {0}")]
    Unavailable(String),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PollRefusal {
    /// A short code for metrics and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            PollRefusal::Malformed(_) => "malformed",
            PollRefusal::BadSignature => "bad_signature",
            PollRefusal::UnknownDevice => "unknown_device",
            PollRefusal::Revoked(_) => "revoked_device",
            PollRefusal::Stale(_) => "stale",
            PollRefusal::Unavailable(_) => "policy_unavailable",
            PollRefusal::Store(_) => "internal",
        }
    }
}

/// The current policy snapshot, shared with every waiting poll.
#[derive(Clone)]
pub struct PolicyHub {
    rx: watch::Receiver<Arc<PolicySnapshot>>,
    /// Wakes the watcher at once (a change made through this server's API).
    nudge: Arc<tokio::sync::Notify>,
}

impl PolicyHub {
    /// Loads the policy and starts watching the store for changes (on the current runtime).
    pub async fn start(vault: Arc<Vault>) -> Result<Self, StoreError> {
        let first = {
            let vault = vault.clone();
            tokio::task::spawn_blocking(move || PolicySnapshot::load(vault.store()))
                .await
                .map_err(|e| StoreError::Corrupt(e.to_string()))?
        };
        let first = match first {
            Ok(s) => s,
            Err(e) => {
                // Serve anyway (agents keep their last good policy); the watcher retries.
                tracing::error!(error = %e, "policy unreadable");
                PolicySnapshot::default()
            }
        };
        let first = Arc::new(first);
        vault.cache_policy(first.clone());
        let (tx, rx) = watch::channel(first);
        let nudge = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(watch_store(vault, tx, nudge.clone()));
        Ok(Self { rx, nudge })
    }

    /// Checks the store now instead of at the next tick (after a change through the API).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<PolicySnapshot> {
        self.rx.borrow().clone()
    }
}

async fn watch_store(
    vault: Arc<Vault>,
    tx: watch::Sender<Arc<PolicySnapshot>>,
    nudge: Arc<tokio::sync::Notify>,
) {
    let mut known = tx.borrow().version;
    let mut ticker = tokio::time::interval(WATCH_PERIOD);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = nudge.notified() => {}
        }
        if tx.is_closed() && tx.receiver_count() == 0 {
            return;
        }
        let store_vault = vault.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let vault = store_vault;
            let version = vault.store().policy_version()?;
            if version == known {
                return Ok(None);
            }
            // Every key rotation moves the version: the new keys are in force before the
            // statements announcing them go out.
            if let Err(e) = vault.reload_keys() {
                tracing::error!(error = %e, "rotated key bundle not loaded; the keys in memory stay in force");
            }
            PolicySnapshot::load(vault.store())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .await;
        match loaded {
            Ok(Ok(Some(snapshot))) => {
                known = snapshot.version;
                tracing::info!(version = known, "policy snapshot reloaded");
                let snapshot = Arc::new(snapshot);
                vault.cache_policy(snapshot.clone());
                tx.send_replace(snapshot);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "policy watch failed"),
            Err(e) => tracing::warn!(error = %e, "policy watch task failed"),
        }
    }
}

/// A checked poll: the device and what it holds.
pub struct CheckedPoll {
    device: vigil_vault_store::metadata::DeviceRecord,
    after: u64,
    wait: Duration,
}

/// Verifies a poll's signature, its device and its time (blocking: reads the store).
pub fn check_poll(vault: &Vault, body: &[u8]) -> Result<CheckedPoll, PollRefusal> {
    let signed = SignedPolicyPoll::verify(body, None).map_err(|e| match e.kind() {
        vigil_proto::SignedErrorKind::BadSignature => PollRefusal::BadSignature,
        _ => PollRefusal::Malformed(e.to_string()),
    })?;
    let poll = &signed.document;
    let device = crate::rekey::device_for_key(
        vault.store(),
        signed.signer.as_bytes(),
        crate::clock::now().unix_timestamp(),
    )?
    .filter(|d| d.id == poll.device_id)
    .ok_or(PollRefusal::UnknownDevice)?;
    if device.revoked_at.is_some() {
        return Err(PollRefusal::Revoked(device.id));
    }
    let sent = poll.sent_at.unix_timestamp();
    if (sent - crate::clock::now().unix_timestamp()).abs() > CLOCK_SKEW_SECONDS {
        return Err(PollRefusal::Stale(sent));
    }
    Ok(CheckedPoll {
        device,
        after: poll.after,
        wait: Duration::from_secs(u64::from(poll.wait_seconds)).min(MAX_WAIT),
    })
}

/// Answers a checked poll: the signed policy as soon as the device's version exceeds the one
/// it holds, `None` when the wait ran out first.
pub async fn answer_poll(
    vault: &Vault,
    hub: &PolicyHub,
    poll: CheckedPoll,
) -> Result<Option<Vec<u8>>, PollRefusal> {
    let mut rx = hub.rx.clone();
    let deadline = tokio::time::Instant::now() + poll.wait;
    loop {
        let snapshot = rx.borrow_and_update().clone();
        let (version, policy) = snapshot
            .effective(&poll.device)
            .map_err(|e| PollRefusal::Unavailable(e.to_string()))?;
        if version > poll.after {
            let keys = vault.keys();
            let signed = sign_for(
                &keys.policy,
                poll.device.id,
                version,
                policy,
                vault.recipients(),
                keys.history.endorsements.clone(),
            )
            .map_err(|e| PollRefusal::Unavailable(e.to_string()))?;
            return Ok(Some(signed.as_bytes().to_vec()));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            // The hub stopped (server shutting down) or the wait ran out.
            Ok(Err(_)) | Err(_) => return Ok(None),
        }
    }
}
