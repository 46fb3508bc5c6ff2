//! Policy from the vault (issue 5): a thread keeps one long poll open to the vault
//! (`POST /v1/policy/poll`, signed by the device key), verifies every policy it receives with
//! the vault's policy key from enrollment and this device's id, keeps the last good one in the
//! spool (`config/policy.json`, the signed bytes as received, verified again on every load)
//! and hands it to the recorder, which applies it live.
//!
//! The key the agent trusts stays the one it enrolled with (or IT pinned); when the vault
//! rotates its policy key, statements carry the old key's endorsement of the new one and are
//! followed through it (`vigil_proto::key_rotation`), and a receipt key the chain endorses
//! replaces the uploader's.
//!
//! A policy that does not verify (altered in transit, signed by another key, addressed to
//! another device) is refused: the last good policy stays in force, the refusal is logged,
//! kept in `config/policy-state.json` for `vigil-agent status`, and reported to the vault in
//! the next heartbeat.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_proto::api::{PolicyPoll, PolicyRefusal, SignedPolicyPoll, POLICY_POLL_KIND};
use vigil_proto::key_rotation::verify_policy;
use vigil_proto::policy::SignedPolicy;
use vigil_proto::SignedError;
use vigil_spool::client::VaultClient;
use vigil_spool::uploader::{AgentReportHandle, ReceiptKey};

use crate::keystore::PolicyFloor;

/// How long the vault may hold a poll.
const POLL_WAIT_SECONDS: u32 = 25;
/// Refusals kept for `status`.
const KEPT_REFUSALS: usize = 10;

/// The last good policy's file in the spool.
pub fn policy_path(config_dir: &Path) -> PathBuf {
    config_dir.join("policy.json")
}

fn state_path(config_dir: &Path) -> PathBuf {
    config_dir.join("policy-state.json")
}

/// What `vigil-agent status` shows about policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PolicyState {
    /// The version in force (0: none received, local configuration).
    pub version: u64,
    /// When it was received (RFC 3339).
    pub received_at: Option<String>,
    /// The latest refusals, newest last.
    pub refusals: Vec<String>,
}

impl PolicyState {
    /// Reads the state file (empty when there is none).
    pub fn load(config_dir: &Path) -> Self {
        std::fs::read(state_path(config_dir))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save(&self, config_dir: &Path) {
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        if let Err(e) = vigil_spool::write_atomic(&state_path(config_dir), &json) {
            tracing::warn!(error = %e, "policy state not saved");
        }
    }
}

/// Who this device is to the vault, for verifying policy.
#[derive(Clone)]
pub struct PolicyTrust {
    /// The vault's policy key this device trusts (enrolled or pinned): the root of any chain
    /// of rotations.
    pub policy_key: VerifyingKey,
    /// The receipt key the uploader checks with, moved when signed policy endorses a new one.
    pub receipt_key: ReceiptKey,
    /// This device's id.
    pub device_id: Uuid,
    /// The highest version this device applied, kept beside its key.
    pub floor: PolicyFloor,
}

impl PolicyTrust {
    /// Verifies a statement for this device through any rotation of the vault's keys, and
    /// takes the receipt key it endorses.
    fn verify(&self, bytes: &[u8]) -> Result<SignedPolicy, SignedError> {
        let followed = self.floor.policy_key().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the policy key followed last is unreadable");
            None
        });
        let (policy, keys) =
            verify_policy(bytes, &self.policy_key, followed.as_ref(), self.device_id)?;
        if let Some(receipt) = keys.receipt {
            if receipt != self.receipt_key.get() {
                tracing::info!(
                    "the vault's receipt key was rotated; receipts are checked with the new one"
                );
                self.receipt_key.set(receipt);
            }
        }
        Ok(policy)
    }

    /// The floor, 0 when it cannot be read (the keystore locked: logged, not fatal).
    fn floor(&self) -> u64 {
        self.floor.get().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "policy floor unreadable; the vault's newer policies still apply");
            0
        })
    }

    fn raise_floor(&self, policy: &SignedPolicy) {
        let version = policy.document.version;
        if let Err(e) = self.floor.raise(version, &policy.signer) {
            tracing::warn!(error = %e, version, "policy floor not raised");
        }
    }
}

/// The last good policy kept in the spool, verified again (a file edited on disk is refused
/// like a policy altered in transit) and no older than the newest this device applied (a
/// signed older policy put back is a rollback). `Ok(None)`: none kept; `Err`: one was kept and
/// refused, with the reason (noted for `status` and the vault).
pub fn load_last_good(
    config_dir: &Path,
    trust: &PolicyTrust,
) -> Result<Option<SignedPolicy>, String> {
    let refuse = |reason: String| {
        tracing::error!(%reason, "stored policy refused");
        note_refusal(config_dir, None, format!("stored policy: {reason}"));
        Err(reason)
    };
    // Unreadable, the floor cannot vouch for anything kept: refused like a rollback.
    let floor = match trust.floor.get() {
        Ok(floor) => floor,
        Err(e) => return refuse(format!("the highest version applied cannot be read: {e}")),
    };
    let Ok(bytes) = std::fs::read(policy_path(config_dir)) else {
        // None kept, though one was applied: deleted, to record under the local files.
        return match floor {
            0 => Ok(None),
            n => refuse(format!("it is gone, though version {n} was applied before")),
        };
    };
    let policy = match trust.verify(&bytes) {
        Ok(p) => p,
        Err(e) => return refuse(e.to_string()),
    };
    if policy.document.version < floor {
        return refuse(format!(
            "version {} is older than version {floor}, which this device applied before \
             (a rollback)",
            policy.document.version
        ));
    }
    trust.raise_floor(&policy);
    Ok(Some(policy))
}

/// The receipt key for a device that is not recording (`vigil-agent upload`): the one the
/// kept policy endorses, through a chain from `trusted` (and past the policy key `floor`
/// followed last), else `enrolled`.
pub fn kept_receipt_key(
    config_dir: &Path,
    trusted: &VerifyingKey,
    floor: &PolicyFloor,
    device_id: Uuid,
    enrolled: VerifyingKey,
) -> VerifyingKey {
    let followed = floor.policy_key().ok().flatten();
    std::fs::read(policy_path(config_dir))
        .ok()
        .and_then(|bytes| verify_policy(&bytes, trusted, followed.as_ref(), device_id).ok())
        .and_then(|(_, keys)| keys.receipt)
        .unwrap_or(enrolled)
}

fn note_refusal(config_dir: &Path, report: Option<&AgentReportHandle>, reason: String) {
    let mut state = PolicyState::load(config_dir);
    state.refusals.push(format!(
        "{} {reason}",
        crate::os::rfc3339(time::OffsetDateTime::now_utc())
    ));
    let excess = state.refusals.len().saturating_sub(KEPT_REFUSALS);
    state.refusals.drain(..excess);
    state.save(config_dir);
    if let Some(report) = report {
        report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .policy_refusals
            .push(PolicyRefusal {
                at: time::OffsetDateTime::now_utc(),
                reason,
            });
    }
}

/// The running poller; dropping it stops it (a poll in flight is abandoned).
pub struct PolicySync {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PolicySync {
    /// Starts polling from `version` (the one in force). New good policies go to `updates`.
    pub fn start(
        client: VaultClient,
        device_key: SigningKey,
        trust: PolicyTrust,
        config_dir: PathBuf,
        report: AgentReportHandle,
        version: u64,
        updates: Sender<SignedPolicy>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("policy-sync".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "policy sync runtime did not start");
                        return;
                    }
                };
                let poller = Poller {
                    client,
                    device_key,
                    trust,
                    config_dir,
                    report,
                    updates,
                };
                runtime.block_on(poller.run(version, flag));
            })
            .expect("spawn policy sync thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for PolicySync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Poller {
    client: VaultClient,
    device_key: SigningKey,
    trust: PolicyTrust,
    config_dir: PathBuf,
    report: AgentReportHandle,
    updates: Sender<SignedPolicy>,
}

impl Poller {
    async fn run(self, mut version: u64, stop: Arc<AtomicBool>) {
        let mut failures: u32 = 0;
        while !stop.load(Ordering::SeqCst) {
            let poll = PolicyPoll {
                kind: POLICY_POLL_KIND.into(),
                device_id: self.trust.device_id,
                sent_at: time::OffsetDateTime::now_utc(),
                after: version,
                wait_seconds: POLL_WAIT_SECONDS,
            };
            let signed = match SignedPolicyPoll::sign(poll, &self.device_key) {
                Ok(signed) => signed,
                Err(e) => {
                    tracing::error!(error = %e, "policy poll not signed");
                    return;
                }
            };
            let request = self.client.poll_policy(signed.as_bytes().to_vec());
            // Checked every 200 ms so a stop does not wait for the vault's answer.
            let answer = tokio::select! {
                answer = request => answer,
                () = wait_for(&stop) => return,
            };
            let retry = match answer {
                Ok(None) => None,
                Ok(Some(bytes)) => self.accept(&bytes, &mut version),
                Err(e) => {
                    tracing::debug!(error = %e, "policy poll failed");
                    Some(())
                }
            };
            if retry.is_some() {
                failures += 1;
                let delay = Duration::from_secs(1 << failures.min(5)).min(Duration::from_secs(30));
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = wait_for(&stop) => return,
                }
            } else {
                failures = 0;
            }
        }
    }

    /// Verifies and keeps a policy; `Some` when the poll should back off (a refusal).
    fn accept(&self, bytes: &[u8], version: &mut u64) -> Option<()> {
        match self.trust.verify(bytes) {
            Ok(policy)
                if policy.document.version > *version
                    && policy.document.version >= self.trust.floor() =>
            {
                self.trust.raise_floor(&policy);
                if let Err(e) = vigil_spool::write_atomic(&policy_path(&self.config_dir), bytes) {
                    // Applied anyway: losing it on restart only means fetching it again.
                    tracing::warn!(error = %e, "policy not kept in the spool");
                }
                *version = policy.document.version;
                let mut state = PolicyState::load(&self.config_dir);
                state.version = *version;
                state.received_at = Some(crate::os::rfc3339(time::OffsetDateTime::now_utc()));
                state.save(&self.config_dir);
                tracing::info!(version = *version, "policy received");
                let _ = self.updates.send(policy);
                None
            }
            // An older or equal version, or one below what this device applied before (a replay,
            // or a vault restored from backup): ignored.
            Ok(policy) => {
                tracing::warn!(
                    received = policy.document.version,
                    held = *version,
                    "policy not newer than the one in force: ignored"
                );
                Some(())
            }
            Err(e) => {
                tracing::error!(error = %e, "policy refused; the last good policy stays in force");
                note_refusal(&self.config_dir, Some(&self.report), e.to_string());
                Some(())
            }
        }
    }
}

async fn wait_for(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::policy::{Policy, PolicyStatement, POLICY_KIND};

    #[test]
    fn the_kept_policy_is_verified_again_and_an_edited_or_older_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let trust = PolicyTrust {
            policy_key: key.verifying_key(),
            receipt_key: ReceiptKey::new(SigningKey::from_bytes(&[8; 32]).verifying_key()),
            device_id: Uuid::new_v4(),
            floor: PolicyFloor::of(&crate::keystore::KeyLocation::File {
                path: dir.path().join("keys/device.key"),
            }),
        };
        let signed = |version: u64| {
            let statement = PolicyStatement {
                kind: POLICY_KIND.into(),
                version,
                device_id: trust.device_id,
                issued_at: time::OffsetDateTime::UNIX_EPOCH,
                policy: Policy::default(),
                recipients: Vec::new(),
                endorsements: Vec::new(),
            };
            SignedPolicy::sign(statement, &key).unwrap()
        };
        assert!(matches!(load_last_good(dir.path(), &trust), Ok(None)));
        let v3 = signed(3);
        std::fs::write(policy_path(dir.path()), signed(4).as_bytes()).unwrap();
        let kept = load_last_good(dir.path(), &trust).unwrap().unwrap();
        assert_eq!(kept.document.version, 4);
        assert_eq!(
            trust.floor.get().unwrap(),
            4,
            "the floor follows what was applied"
        );

        let edited = String::from_utf8(kept.as_bytes().to_vec())
            .unwrap()
            .replace("\"screen\":true", "\"screen\":false");
        std::fs::write(policy_path(dir.path()), edited).unwrap();
        assert!(load_last_good(dir.path(), &trust).is_err());
        let state = PolicyState::load(dir.path());
        assert_eq!(state.refusals.len(), 1);
        assert!(state.refusals[0].contains("does not verify"), "{state:?}");

        // Version 3, genuinely signed, put back after 4 was applied: a rollback.
        std::fs::write(policy_path(dir.path()), v3.as_bytes()).unwrap();
        let err = load_last_good(dir.path(), &trust).unwrap_err();
        assert!(err.contains("older than version 4"), "{err}");
        assert_eq!(
            trust.floor.get().unwrap(),
            4,
            "a refused policy never lowers the floor"
        );
    }
}
