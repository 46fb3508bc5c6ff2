//! The recordings search index: one entry per stored segment (recorded user, device team, call
//! id, masked or not, start and end, the policy version it was recorded under), written by ingest
//! and rebuilt from stored manifests by [`reindex`]; searched by the API and the CLI alike
//! through [`search_as`], which audits every search.

use std::collections::HashMap;

use uuid::Uuid;
use vigil_proto::{SegmentManifest, SignedManifest};
use vigil_vault_store::metadata::{
    DeviceRecord, MetadataStore, RecordingFilter, RecordingRecord, SegmentFilter, StoreError,
};

use crate::audit;
use crate::Vault;

/// Audit action: recordings were searched (target: the filter).
pub const ACTION_SEARCH: &str = "recording.search";
fn entry(m: &SegmentManifest, device: Uuid, team: Option<String>, seq: i64) -> RecordingRecord {
    RecordingRecord {
        session_id: m.session_id,
        sequence: seq,
        device_id: device,
        agent: m.user.clone(),
        team,
        call_id: m.call_id.clone(),
        masked: !m.masked_spans.is_empty(),
        start: m.start.wall.unix_timestamp(),
        end: m.end.wall.unix_timestamp(),
        policy_version: i64::try_from(m.policy_version).unwrap_or(i64::MAX),
    }
}

/// Searches the recordings index for `actor`, audited as `recording.search` with the filter
/// (the API and the CLI both come here).
pub fn search_as(
    store: &dyn MetadataStore,
    actor: &str,
    filter: &RecordingFilter,
) -> Result<Vec<RecordingRecord>, StoreError> {
    audit::record(store, actor, ACTION_SEARCH, Some(describe(filter)), None)?;
    store.recordings(filter)
}

/// Writes the search entry of a segment just stored. A failure is logged, not returned: the
/// segment is safely stored and its receipt is due; only search misses it until [`reindex`].
pub(crate) fn index_segment(vault: &Vault, m: &SegmentManifest, device: &DeviceRecord, seq: i64) {
    let record = entry(m, device.id, device.team.clone(), seq);
    if let Err(e) = vault.store().put_recording(&record) {
        tracing::error!(session = %m.session_id, seq, error = %e, "search entry not stored");
    }
}

/// Why the recordings index could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ReindexError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] vigil_vault_store::metadata::StoreError),
    /// A stored manifest could not be read.
    #[error(transparent)]
    Blob(#[from] vigil_vault_store::blobs::BlobError),
}

/// What [`reindex`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReindexReport {
    /// Segments given a search entry.
    pub indexed: usize,
    /// Segments whose stored manifest no longer verifies or matches its row (left out, logged).
    pub refused: usize,
}

/// Gives every stored segment without a search entry one, from its stored manifest (checked
/// again: signature, and the digest the segment row holds). For deployments that stored
/// segments before search existed, or after an indexing failure.
pub fn reindex(
    store: &dyn MetadataStore,
    blobs: &dyn vigil_vault_store::blobs::BlobStore,
) -> Result<ReindexReport, ReindexError> {
    let teams: HashMap<Uuid, Option<String>> = store
        .devices()?
        .into_iter()
        .map(|d| (d.id, d.team))
        .collect();
    let mut report = ReindexReport::default();
    for segment in store.segments(&SegmentFilter::default())? {
        if store
            .recording(segment.session_id, segment.sequence)?
            .is_some()
        {
            continue;
        }
        let seq = u64::try_from(segment.sequence).unwrap_or_default();
        let bytes = blobs.get(segment.session_id, &vigil_proto::naming::manifest_file(seq))?;
        let verified = SignedManifest::verify(&bytes, None)
            .ok()
            .filter(|_| vigil_proto::sha256_hex(&bytes) == segment.manifest_sha256);
        let Some(signed) = verified else {
            tracing::error!(session = %segment.session_id, seq, "stored manifest does not verify; not indexed");
            report.refused += 1;
            continue;
        };
        let team = teams.get(&segment.device_id).cloned().flatten();
        store.put_recording(&entry(
            &signed.document,
            segment.device_id,
            team,
            segment.sequence,
        ))?;
        report.indexed += 1;
    }
    Ok(report)
}

/// One search result as the API and the CLI print it.
pub fn recording_json(r: &RecordingRecord) -> serde_json::Value {
    let t = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s)
            .map(crate::clock::rfc3339)
            .unwrap_or_default()
    };
    serde_json::json!({
        "session": r.session_id,
        "sequence": r.sequence,
        "device": r.device_id,
        "agent": r.agent,
        "team": r.team,
        "call_id": r.call_id,
        "masked": r.masked,
        "start": t(r.start),
        "end": t(r.end),
        "policy_version": r.policy_version,
    })
}

fn describe(f: &RecordingFilter) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("agent", f.agent.clone());
    add("team", f.team.clone());
    add("scope", f.teams.as_ref().map(|t| t.join(",")));
    add("from", f.from.map(|v| v.to_string()));
    add("to", f.to.map(|v| v.to_string()));
    add("call_id", f.call_id.clone());
    add("masked", f.masked.map(|v| v.to_string()));
    add("policy_version", f.policy_version.map(|v| v.to_string()));
    if parts.is_empty() {
        "all".into()
    } else {
        audit::printable(&parts.join(" "), 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_describe_themselves() {
        assert_eq!(describe(&RecordingFilter::default()), "all");
        let f = RecordingFilter {
            agent: Some("ann".into()),
            masked: Some(true),
            teams: Some(vec!["north".into()]),
            ..Default::default()
        };
        assert_eq!(describe(&f), "agent=ann scope=north masked=true");
    }
}
