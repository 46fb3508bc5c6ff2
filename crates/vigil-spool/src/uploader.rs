//! The uploader: delivers spooled segments to the vault, exactly once as far as the vault is
//! concerned (uploads are idempotent there), and deletes a local copy only after the vault's
//! signed receipt for exactly that manifest verifies.
//!
//! It runs on its own thread with a small async runtime: up to `concurrency` uploads at once,
//! each retried with exponential backoff and jitter while the vault is unreachable or
//! overloaded; refusals (4xx) are kept on disk as `rejected` and raise the alarm. An optional
//! bandwidth cap paces the bytes sent. A signed heartbeat tells the vault what was produced,
//! so it can tell segments in transit from segments lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::Rng as _;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;
use vigil_proto::api::{
    AgentReport, Backlog, Heartbeat, SessionProgress, SignedHeartbeat, HEARTBEAT_KIND,
};
use vigil_proto::frame::SegmentBody;
use vigil_proto::receipt::SignedReceipt;
use vigil_proto::sha256_hex;

use crate::client::{RequestError, VaultClient};
use crate::outbox::now_ms;
use crate::{OutboxEntry, Spool};

/// How the uploader behaves.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Bytes per second at most (`None`: no cap).
    pub max_bytes_per_second: Option<u64>,
    /// First retry delay; doubles per attempt.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// How often the heartbeat is sent.
    pub heartbeat_every: Duration,
}

impl Default for UploaderConfig {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_bytes_per_second: None,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(30),
        }
    }
}

/// Who the uploader speaks for and whom it trusts.
#[derive(Clone)]
pub struct Delivery {
    /// The vault client (CA pinned).
    pub client: VaultClient,
    /// The vault's receipt-signing key: the enrollment's, or the newest one the vault's signed
    /// policy endorsed (the policy sync moves it when the vault rotates it).
    pub receipt_key: ReceiptKey,
    /// The enrolled device id.
    pub device_id: Uuid,
    /// The device key, to sign heartbeats.
    pub device_key: SigningKey,
    /// What the agent says about itself in each heartbeat (set by the recorder and the policy
    /// sync); refusals are cleared once a heartbeat carried them.
    pub report: AgentReportHandle,
}

/// The receipt key receipts are checked with, shared with whoever learns of a new one. A
/// receipt signed by another key is an attempt error: the segment stays queued and is sent
/// again, by which time the policy naming the new key has usually arrived.
#[derive(Debug, Clone)]
pub struct ReceiptKey(std::sync::Arc<std::sync::RwLock<VerifyingKey>>);

impl ReceiptKey {
    /// A handle holding `key`.
    pub fn new(key: VerifyingKey) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(key)))
    }

    /// The key in force.
    pub fn get(&self) -> VerifyingKey {
        *self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the key (a vault rotation, endorsed in signed policy).
    pub fn set(&self, key: VerifyingKey) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }
}

/// The agent's live state, shared between the recorder, the policy sync and the heartbeat.
pub type AgentReportHandle = std::sync::Arc<std::sync::Mutex<AgentReport>>;

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("vault", &self.client.base())
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// Why one upload did not complete.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("spool: {0}")]
    Spool(#[from] crate::SpoolError),
    #[error("receipt does not verify: {0}")]
    Receipt(String),
}

impl AttemptError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Request(e) => e.is_retryable(),
            // A vault that signs wrong receipts may be fixed; a spool file that cannot be read
            // will not heal by itself but must never be dropped either: retry slowly.
            Self::Receipt(_) | Self::Spool(_) => true,
        }
    }
}

/// A running uploader; [`Uploader::stop`] ends it.
pub struct Uploader {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    drain_until: Arc<std::sync::Mutex<Option<Instant>>>,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Uploader")
    }
}

impl Uploader {
    /// Starts delivering the spool's outbox.
    pub fn start(spool: Spool, delivery: Delivery, config: UploaderConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let drain_until = Arc::new(std::sync::Mutex::new(None));
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            spool,
            delivery,
            config,
            stop: stop.clone(),
            drain_until: drain_until.clone(),
            wake: wake.clone(),
            pacer: Arc::new(tokio::sync::Mutex::new(Instant::now())),
        };
        let thread = std::thread::Builder::new()
            .name("uploader".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker.run()),
                    Err(e) => tracing::error!(error = %e, "uploader runtime did not start"),
                }
            })
            .expect("spawn uploader thread");
        Self {
            thread: Some(thread),
            stop,
            drain_until,
            wake,
        }
    }

    /// Tells the uploader a segment was just spooled.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops after delivering what is due within `drain` (in-flight uploads finish or are
    /// abandoned at the deadline; what remains waits in the outbox for the next start).
    pub fn stop(mut self, drain: Duration) {
        *self.drain_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + drain);
        self.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker {
    spool: Spool,
    delivery: Delivery,
    config: UploaderConfig,
    stop: Arc<AtomicBool>,
    drain_until: Arc<std::sync::Mutex<Option<Instant>>>,
    wake: Arc<Notify>,
    /// When the bandwidth cap lets the next byte go.
    pacer: Arc<tokio::sync::Mutex<Instant>>,
}

impl Worker {
    fn drain_deadline(&self) -> Option<Instant> {
        *self.drain_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(self) {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let mut next_heartbeat = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let draining = self.drain_deadline();
            if draining.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if Instant::now() >= next_heartbeat && draining.is_none() {
                self.send_heartbeat().await;
                next_heartbeat = Instant::now() + self.config.heartbeat_every;
            }
            let free = self.config.concurrency.saturating_sub(tasks.len());
            if free > 0 {
                match self.spool.outbox().claim_due(now_ms(), free) {
                    Ok(claimed) => {
                        for entry in claimed {
                            tasks.spawn(self.attempt(entry));
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "outbox unreadable"),
                }
            }
            if draining.is_some() && tasks.is_empty() && self.nothing_due() {
                break;
            }
            let nap = tokio::time::sleep(Duration::from_millis(500));
            tokio::select! {
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = self.wake.notified() => {}
                _ = nap => {}
            }
        }
        // Abandoned uploads stay `uploading` until the next start resets them to `sealed`.
        tasks.abort_all();
        // A graceful stop tells the vault where things stand.
        if self.drain_deadline().is_some() {
            self.send_heartbeat().await;
        }
    }

    fn nothing_due(&self) -> bool {
        match self.spool.outbox().next_due_ms() {
            Ok(Some(due)) => due > now_ms(),
            Ok(None) => true,
            Err(_) => true,
        }
    }

    fn attempt(&self, entry: OutboxEntry) -> impl std::future::Future<Output = ()> + 'static {
        let spool = self.spool.clone();
        let delivery = self.delivery.clone();
        let pacer = self.pacer.clone();
        let config = self.config.clone();
        async move {
            let (session, sequence) = (entry.session_id, entry.sequence);
            match upload_one(&spool, &delivery, &pacer, &config, &entry).await {
                Ok(duplicate) => {
                    tracing::info!(%session, sequence, duplicate, "segment delivered");
                }
                Err(e) if e.is_retryable() => {
                    let delay = backoff(&config, entry.attempts);
                    tracing::warn!(%session, sequence, attempt = entry.attempts, retry_in_ms =
                        delay.as_millis() as u64, error = %e, "upload failed; will retry");
                    let due = now_ms() + delay.as_millis() as i64;
                    if let Err(e) =
                        spool
                            .outbox()
                            .retry_later(session, sequence, &e.to_string(), due)
                    {
                        tracing::error!(error = %e, "outbox update failed");
                    }
                }
                Err(e) => {
                    tracing::error!(%session, sequence, error = %e,
                        "the vault refused a segment; it stays in the spool");
                    if let Err(e) = spool.outbox().reject(session, sequence, &e.to_string()) {
                        tracing::error!(error = %e, "outbox update failed");
                    }
                }
            }
        }
    }

    async fn send_heartbeat(&self) {
        let outbox = self.spool.outbox();
        let (sessions, backlog) = match (
            outbox.sessions(now_ms() - 24 * 3600 * 1000),
            outbox.backlog(),
        ) {
            (Ok(s), Ok(b)) => (s, b),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "outbox unreadable");
                return;
            }
        };
        let report = self
            .delivery
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let refusals = report.policy_refusals.len();
        let pause_refusals = report.pause_refusals.len();
        let heartbeat = Heartbeat {
            kind: HEARTBEAT_KIND.into(),
            device_id: self.delivery.device_id,
            sent_at: time::OffsetDateTime::now_utc(),
            sessions: sessions
                .into_iter()
                .map(|(session_id, s)| SessionProgress {
                    session_id,
                    produced: s.produced,
                    pending: s.pending,
                    closed: s.closed,
                })
                .collect(),
            backlog: Backlog {
                segments: backlog.segments,
                bytes: backlog.bytes,
                oldest: backlog.oldest_ms.and_then(|ms| {
                    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).ok()
                }),
            },
            agent: Some(report),
        };
        let signed = match SignedHeartbeat::sign(heartbeat, &self.delivery.device_key) {
            Ok(signed) => signed,
            Err(e) => {
                tracing::error!(error = %e, "heartbeat not signed");
                return;
            }
        };
        match self
            .delivery
            .client
            .heartbeat(signed.as_bytes().to_vec())
            .await
        {
            Ok(()) => {
                // Refusals reported once; newer ones (after the snapshot) stay for the next.
                let mut shared = self
                    .delivery
                    .report
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let n = refusals.min(shared.policy_refusals.len());
                shared.policy_refusals.drain(..n);
                let n = pause_refusals.min(shared.pause_refusals.len());
                shared.pause_refusals.drain(..n);
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat not delivered"),
        }
    }
}

/// Exponential backoff with jitter: base·2^(attempt-1), capped, times a random 50–100 %, so
/// a fleet that lost its vault does not come back in lockstep.
fn backoff(config: &UploaderConfig, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    let full = config
        .backoff_base
        .saturating_mul(1 << exp)
        .min(config.backoff_max);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

/// Waits until the bandwidth cap allows `bytes` more: a body goes out only once its own
/// transmission time at the cap has passed since the previous one's, so no window starting when
/// the uploader started ever carries more than the cap (no initial burst).
async fn pace(pacer: &tokio::sync::Mutex<Instant>, config: &UploaderConfig, bytes: usize) {
    let Some(rate) = config.max_bytes_per_second.filter(|r| *r > 0) else {
        return;
    };
    let due = {
        let mut next = pacer.lock().await;
        let due = (*next).max(Instant::now()) + Duration::from_secs_f64(bytes as f64 / rate as f64);
        *next = due;
        due
    };
    tokio::time::sleep_until(due.into()).await;
}

/// One upload: read, frame, send, verify the receipt, acknowledge, delete. Returns whether the
/// vault already had the segment.
async fn upload_one(
    spool: &Spool,
    delivery: &Delivery,
    pacer: &tokio::sync::Mutex<Instant>,
    config: &UploaderConfig,
    entry: &OutboxEntry,
) -> Result<bool, AttemptError> {
    let (session, sequence) = (entry.session_id, entry.sequence);
    let segment = spool.read_segment(session, sequence)?;
    let blobs: Vec<_> = segment
        .blobs
        .iter()
        .map(|(k, b)| (*k, b.as_slice()))
        .collect();
    let body = SegmentBody::encode(&segment.manifest, &blobs);
    pace(pacer, config, body.len()).await;
    // Signed at send time: the vault checks who is uploading before it reads the body.
    let auth = vigil_proto::upload_auth::sign_upload(
        &delivery.device_key,
        session,
        sequence,
        time::OffsetDateTime::now_utc().unix_timestamp(),
        &body,
    );
    let answer = delivery
        .client
        .upload(session, sequence, body, &auth)
        .await?;
    let receipt = SignedReceipt::verify(&answer.receipt, Some(&delivery.receipt_key.get()))
        .map_err(|e| AttemptError::Receipt(e.to_string()))?;
    let r = &receipt.document;
    let digest = sha256_hex(&segment.manifest);
    if r.session_id != session || r.sequence != sequence || r.manifest_sha256 != digest {
        return Err(AttemptError::Receipt(format!(
            "it names {}/{} with manifest {}, not this segment",
            r.session_id, r.sequence, r.manifest_sha256
        )));
    }
    spool
        .outbox()
        .acknowledge(session, sequence, receipt.as_bytes(), now_ms())
        .map_err(crate::SpoolError::from)?;
    spool.delete_segment(session, sequence)?;
    Ok(answer.duplicate)
}
