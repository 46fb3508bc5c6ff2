//! Retention per media kind (brief §3, §6): each segment's terms are fixed at ingest from the
//! policy then in force ([`policy_for_ingest`], [`terms`]), and the sweeper ([`sweep`]) deletes
//! the blobs whose time has come, screen and voice each on its own date, unless an active
//! legal hold ([`crate::holds`]) covers the segment. Each batch is audited
//! (`retention.sweep`) before its blobs are deleted; the segment row and its signed manifest
//! stay, with the deletion (when, `expired`) recorded on the row for exports to report.
//!
//! The server sweeps every `[retention] sweep_seconds` of `vault.toml` (default 600;
//! [`spawn_sweeper`]); `vigil-vault retention sweep` sweeps on demand. Both use the real clock;
//! the `now` parameter of [`sweep`] lets a test sweep "as of" a later time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigil_proto::policy::Policy;
use vigil_proto::SignedManifest;

use crate::holds::ActiveHolds;
use crate::Vault;
use vigil_proto::MediaKind;
use vigil_vault_store::blobs::BlobError;
use vigil_vault_store::metadata::lifecycle::{Deletion, RetentionTerms, DELETED_EXPIRED};
use vigil_vault_store::metadata::{DeviceRecord, SegmentRecord, StoreError};

/// Audit action: a batch of expired blobs was deleted.
pub const ACTION_RETENTION_SWEEP: &str = "retention.sweep";

/// The audit actor of the sweeper.
pub const SWEEP_ACTOR: &str = "vault:retention";

/// Segments per batch (one audit record each).
pub const BATCH: usize = 500;

/// Segment ids listed in full in a batch's audit record; beyond, only their digest.
const LISTED_IDS: usize = 50;

const DAY: i64 = 86_400;

/// Why the policy of a device could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PolicyLookupError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored policy is unreadable.
    #[error(transparent)]
    Read(#[from] crate::policy::PolicyReadError),
    /// The stored layers do not resolve for this device.
    #[error("policy of device {device}: {source}")]
    Unresolvable {
        /// The device.
        device: uuid::Uuid,
        /// Why.
        source: vigil_proto::policy::PolicyError,
    },
}

/// The policy in force for `device` now, with its version: the one place ingest and the
/// sweeper learn retention days from.
pub fn policy_for_ingest(
    vault: &Vault,
    device: &DeviceRecord,
) -> Result<(u64, Policy), PolicyLookupError> {
    // The server's snapshot (no query per upload); the store when run from the command line.
    let snapshot = match vault.cached_policy() {
        Some(snapshot) => snapshot,
        None => std::sync::Arc::new(crate::policy::PolicySnapshot::load(vault.store())?),
    };
    snapshot
        .effective(device)
        .map_err(|source| PolicyLookupError::Unresolvable {
            device: device.id,
            source,
        })
}

/// A device may claim a start this far after the segment arrived (clocks differ a little).
const FUTURE_TOLERANCE: i64 = 300;

/// When a segment counts as recorded (Unix seconds), bounded by its arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedTimes {
    /// Its start.
    pub start: i64,
    /// Its end.
    pub end: i64,
    /// Counted start minus the device's claim: 0 when the claim was believed.
    pub shift: i64,
}

/// The times a segment claiming `claimed_start`..`claimed_end` and received at `received`
/// counts as recorded at: the claim, unless it starts more than `tolerance_days` before the
/// arrival (then that long before it) or more than five minutes after it (then at it).
pub fn counted_times(
    claimed_start: i64,
    claimed_end: i64,
    received: i64,
    tolerance_days: u32,
) -> CountedTimes {
    let earliest = received.saturating_sub(i64::from(tolerance_days).saturating_mul(DAY));
    let start = if claimed_start < earliest {
        earliest
    } else if claimed_start > received.saturating_add(FUTURE_TOLERANCE) {
        received
    } else {
        claimed_start
    };
    let shift = start.saturating_sub(claimed_start);
    CountedTimes {
        start,
        end: claimed_end.saturating_add(shift).max(start),
        shift,
    }
}

/// The terms of a segment recorded from `recorded_at` to `ended_at` (Unix seconds) under
/// `policy` version `version`.
pub fn terms(recorded_at: i64, ended_at: i64, version: u64, policy: &Policy) -> RetentionTerms {
    let expires = |days: u32| recorded_at.saturating_add(i64::from(days).saturating_mul(DAY));
    RetentionTerms {
        policy_version: i64::try_from(version).unwrap_or(i64::MAX),
        ended_at,
        voice_expires_at: expires(policy.retention_voice_days),
        screen_expires_at: expires(policy.retention_screen_days),
    }
}

/// Ingest's insert of a segment row with its terms, fixed from the policy in force for
/// `device` (in the row's own transaction) and counted from `times` (the row's
/// `recorded_at` is their start). When the policy cannot be read, the row is stored without
/// terms (the upload must not fail for it) and the next sweep fixes them.
pub(crate) fn insert_segment(
    vault: &Vault,
    device: &DeviceRecord,
    times: CountedTimes,
    row: &SegmentRecord,
) -> Result<(), StoreError> {
    match policy_for_ingest(vault, device) {
        Ok((version, policy)) => {
            let t = terms(times.start, times.end, version, &policy);
            vault.store().insert_segment_with_terms(row, &t)
        }
        Err(e) => {
            tracing::warn!(segment_id = %row.segment_id, error = %e,
                "policy unavailable: segment stored without retention terms; the next sweep fixes them");
            vault.store().insert_segment(row)
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Segments whose missing terms were fixed (older rows, interrupted ingests).
    pub terms_fixed: usize,
    /// Screen blobs deleted.
    pub screen_deleted: usize,
    /// Voice blobs deleted.
    pub voice_deleted: usize,
    /// Segments with an expired blob kept because a hold covers them.
    pub held: usize,
    /// Blobs whose deletion failed (retried by the next sweep).
    pub failed: usize,
    /// The audit record of each batch.
    pub audit_seqs: Vec<i64>,
}

/// Why a sweep stopped (what it did before stays done and audited).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batch's audit record could not be written: its blobs were not deleted.
    #[error("cannot write the audit record of a retention batch, nothing of it deleted: {0}")]
    Audit(#[source] StoreError),
    /// The policy lookup failed.
    #[error(transparent)]
    Policy(#[from] PolicyLookupError),
}

/// Fixes the terms of segments stored without them, from the policy in force now.
fn fix_missing_terms(vault: &Vault) -> Result<usize, SweepError> {
    let mut devices: HashMap<Uuid, DeviceRecord> = HashMap::new();
    let mut fixed = 0;
    let mut after = None;
    loop {
        let page = vault.store().segments_without_terms(after, BATCH)?;
        let Some(last) = page.last() else {
            return Ok(fixed);
        };
        after = Some(last.segment_id);
        if devices.is_empty() {
            devices = vault
                .store()
                .devices()?
                .into_iter()
                .map(|d| (d.id, d))
                .collect();
        }
        for seg in &page {
            let Some(device) = devices.get(&seg.device_id) else {
                continue;
            };
            let (version, policy) = policy_for_ingest(vault, device)?;
            // The manifest's end, moved as its start was when it was counted at ingest.
            let ended = manifest_times(vault, seg).map_or(seg.recorded_at, |(start, end)| {
                end + (seg.recorded_at - start)
            });
            let t = terms(seg.recorded_at, ended, version, &policy);
            if vault.store().set_retention(seg.segment_id, &t)? {
                fixed += 1;
            }
        }
    }
}

/// The recording start and end its stored manifest names.
fn manifest_times(vault: &Vault, seg: &SegmentRecord) -> Option<(i64, i64)> {
    let seq = u64::try_from(seg.sequence).ok()?;
    let bytes = vault
        .blobs()
        .get(seg.session_id, &vigil_proto::naming::manifest_file(seq))
        .ok()?;
    let signed = SignedManifest::verify(&bytes, None).ok()?;
    let m = &signed.document;
    Some((m.start.wall.unix_timestamp(), m.end.wall.unix_timestamp()))
}

/// A deletion to do: segment, session, sequence, kind.
type Planned = (Uuid, Uuid, i64, MediaKind);

fn batch_target(plan: &[Planned]) -> (String, String) {
    let mut ids: Vec<Uuid> = plan.iter().map(|p| p.0).collect();
    ids.dedup();
    let mut digest = Sha256::new();
    for id in &ids {
        digest.update(id.as_bytes());
    }
    let count = |k: MediaKind| plan.iter().filter(|p| p.3 == k).count();
    let target = format!(
        "screen={} voice={} segments={} segment_ids_sha256={}",
        count(MediaKind::Screen),
        count(MediaKind::Voice),
        ids.len(),
        hex::encode(digest.finalize())
    );
    let mut listed: Vec<String> = ids.iter().take(LISTED_IDS).map(Uuid::to_string).collect();
    if ids.len() > LISTED_IDS {
        listed.push(format!("… {} more", ids.len() - LISTED_IDS));
    }
    let reason = format!(
        "{DELETED_EXPIRED}: retention terms reached; segments {}",
        listed.join(",")
    );
    (target, reason)
}

/// Deletes the blobs expired at `now` (Unix seconds) that no active hold covers; see the
/// module documentation. Audited as the sweeper ([`SWEEP_ACTOR`]).
pub fn sweep(vault: &Vault, now: i64) -> Result<SweepReport, SweepError> {
    sweep_as(vault, now, SWEEP_ACTOR)
}

/// [`sweep`] on someone's demand: the audit records name `actor` (`cli:<OS user>`).
pub fn sweep_as(vault: &Vault, now: i64, actor: &str) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport {
        terms_fixed: fix_missing_terms(vault)?,
        ..SweepReport::default()
    };
    let holds = ActiveHolds::load(vault.store())?;
    let mut after = None;
    loop {
        let page = vault.store().segments_due(now, after, BATCH)?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        after = Some(last.segment.segment_id);
        let mut plan: Vec<Planned> = Vec::new();
        for seg in &page {
            if let Some(hold) = holds.covering(seg) {
                tracing::debug!(segment = %seg.segment.segment_id, %hold, "expired but held");
                report.held += 1;
                continue;
            }
            for kind in MediaKind::ALL {
                if seg.deleted(kind).is_none() && seg.expires_at(kind).is_some_and(|t| t <= now) {
                    let s = &seg.segment;
                    plan.push((s.segment_id, s.session_id, s.sequence, kind));
                }
            }
        }
        if plan.is_empty() {
            continue;
        }
        let (target, reason) = batch_target(&plan);
        let audit = crate::audit::record(
            vault.store(),
            actor,
            ACTION_RETENTION_SWEEP,
            Some(target),
            Some(reason),
        )
        .map_err(SweepError::Audit)?;
        report.audit_seqs.push(audit.seq);
        for (segment_id, session, sequence, kind) in plan {
            match delete_blob(vault, segment_id, session, sequence, kind) {
                Ok(()) => match kind {
                    MediaKind::Screen => report.screen_deleted += 1,
                    MediaKind::Voice => report.voice_deleted += 1,
                },
                Err(e) => {
                    tracing::warn!(%segment_id, kind = kind.as_str(), error = %e, "expired blob not deleted; retried next sweep");
                    report.failed += 1;
                }
            }
        }
    }
}

/// Why one blob could not be deleted.
#[derive(Debug, thiserror::Error)]
enum DeleteError {
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn delete_blob(
    vault: &Vault,
    segment_id: Uuid,
    session: Uuid,
    sequence: i64,
    kind: MediaKind,
) -> Result<(), DeleteError> {
    let seq = u64::try_from(sequence).unwrap_or_default();
    vault
        .blobs()
        .delete(session, &vigil_proto::naming::blob_file(seq, kind))?;
    vault.store().mark_deleted(
        segment_id,
        kind,
        &Deletion {
            at: crate::clock::now().unix_timestamp(),
            reason: DELETED_EXPIRED.into(),
        },
    )?;
    Ok(())
}

/// Sweeps every `every` with the real clock until the task is dropped (the first sweep runs
/// one period after start). Failures are logged; the next period tries again.
pub fn spawn_sweeper(vault: Arc<Vault>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let sweeping = vault.clone();
            let swept = tokio::task::spawn_blocking(move || {
                sweep(&sweeping, crate::clock::now().unix_timestamp())
            })
            .await;
            match swept {
                Ok(Ok(r)) if r.screen_deleted + r.voice_deleted + r.failed > 0 => {
                    tracing::info!(
                        screen = r.screen_deleted,
                        voice = r.voice_deleted,
                        held = r.held,
                        failed = r.failed,
                        "retention sweep"
                    )
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention sweep failed"),
                Err(e) => tracing::error!(error = %e, "retention sweep task failed"),
            }
            // Orphans of crashes between commit and row (logged by the sweep itself).
            let sweeping = vault.clone();
            let orphans = tokio::task::spawn_blocking(move || {
                let now = crate::clock::now().unix_timestamp();
                crate::orphans::sweep_orphans(&sweeping, now, "vault:orphans")
            })
            .await;
            match orphans {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "orphan sweep failed"),
                Err(e) => tracing::error!(error = %e, "orphan sweep task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_count_days_from_the_recording_start() {
        let policy = Policy {
            retention_voice_days: 10,
            retention_screen_days: 2,
            ..Policy::default()
        };
        let t = terms(1_000, 1_010, 7, &policy);
        assert_eq!(t.policy_version, 7);
        assert_eq!(t.ended_at, 1_010);
        assert_eq!(t.voice_expires_at, 1_000 + 10 * DAY);
        assert_eq!(t.screen_expires_at, 1_000 + 2 * DAY);
        assert_eq!(
            terms(i64::MAX - 5, i64::MAX, 0, &policy).voice_expires_at,
            i64::MAX
        );
    }

    #[test]
    fn claims_far_before_or_after_arrival_count_from_it() {
        let received = 100 * DAY;
        // Within the tolerance (an agent offline for six days): believed.
        let late = counted_times(received - 6 * DAY, received - 6 * DAY + 10, received, 7);
        assert_eq!(
            (late.start, late.end, late.shift),
            (received - 6 * DAY, received - 6 * DAY + 10, 0)
        );
        // Set back to 1970: counted from seven days before arrival, its length kept.
        let back = counted_times(0, 10, received, 7);
        assert_eq!(
            (back.start, back.end),
            (received - 7 * DAY, received - 7 * DAY + 10)
        );
        assert_eq!(back.shift, received - 7 * DAY);
        // A clock a minute fast is believed; an hour fast counts from arrival.
        assert_eq!(
            counted_times(received + 60, received + 70, received, 7).shift,
            0
        );
        let ahead = counted_times(received + 3600, received + 3610, received, 7);
        assert_eq!(
            (ahead.start, ahead.end, ahead.shift),
            (received, received + 10, -3600)
        );
        // Extreme claims do not overflow.
        assert_eq!(
            counted_times(i64::MIN, i64::MAX, received, u32::MAX).start,
            received - i64::from(u32::MAX) * DAY
        );
    }

    #[test]
    fn config_defaults_to_ten_minutes() {
        use crate::config::RetentionConfig;
        assert_eq!(RetentionConfig::default().sweep_seconds, 600);
        assert!(RetentionConfig::default().is_default());
    }
}
