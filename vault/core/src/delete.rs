//! Deleting a recording (brief §6): the media of every segment of a session is destroyed like a
//! range redaction over the session's whole time ([`crate::redact`]): both blobs of each
//! segment go, the segment rows and signed manifests stay, a signed tombstone per segment
//! stands in for the blobs. Audited as `recording.delete` (before anything is destroyed) with
//! the caller's reason and the evidence (segment ids, blob and tombstone digests).
//!
//! A legal hold covering any segment of the session refuses the deletion as a whole.

use std::collections::HashMap;

use uuid::Uuid;

use crate::audit::stated_reason;
use crate::redact::{redact_as, RedactError, RedactReport, RedactRequest};
use crate::Vault;
use vigil_vault_store::metadata::lifecycle::OverlapFilter;
use vigil_vault_store::metadata::StoreError;

/// Audit action: a recording (every segment of a session) was deleted.
pub const ACTION_DELETE: &str = "recording.delete";

/// The case named in the tombstones of a deletion that names none.
pub const DEFAULT_CASE: &str = "deletion";

/// What to delete.
#[derive(Debug, Clone)]
pub struct DeleteRequest {
    /// The session whose media goes.
    pub session: Uuid,
    /// Why (kept in the audit log and each tombstone).
    pub reason: String,
    /// The case it serves, if any ([`DEFAULT_CASE`] otherwise).
    pub case: Option<String>,
    /// The teams the caller may act on; `None` for every team. A session recorded by a
    /// device outside them is treated as unknown.
    pub teams: Option<Vec<String>>,
}

/// Why a deletion failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No reason.
    #[error("a deletion needs a reason")]
    MissingReason,
    /// No stored segment of this session (or none within the caller's teams).
    #[error("no recording {0}")]
    NotFound(Uuid),
    /// An active legal hold covers a segment of the session: nothing was destroyed.
    #[error(
        "segment {segment} is under legal hold {hold}: release the hold first; nothing destroyed"
    )]
    Held {
        /// The held segment.
        segment: Uuid,
        /// The hold covering it.
        hold: Uuid,
    },
    /// The audit record could not be written: nothing was destroyed.
    #[error("cannot write the audit record, nothing destroyed: {0}")]
    Audit(#[source] StoreError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Destroying failed part way (run again to complete it).
    #[error(transparent)]
    Destroy(RedactError),
}

/// Seconds far enough in the past and future to hold every recording.
const ALL_TIME: (i64, i64) = (-(1 << 40), 1 << 40);

/// Deletes the media of every segment of the session; see the module documentation.
pub fn delete_session(
    vault: &Vault,
    request: &DeleteRequest,
    actor: &str,
) -> Result<RedactReport, DeleteError> {
    let reason = stated_reason(Some(&request.reason)).ok_or(DeleteError::MissingReason)?;
    let case = request
        .case
        .as_deref()
        .and_then(|c| stated_reason(Some(c)))
        .unwrap_or_else(|| DEFAULT_CASE.to_owned());
    let store = vault.store();
    let found = store.segments_overlapping(&OverlapFilter {
        session: Some(request.session),
        device: None,
        from: ALL_TIME.0,
        to: ALL_TIME.1,
    })?;
    if found.is_empty() {
        return Err(DeleteError::NotFound(request.session));
    }
    if let Some(teams) = &request.teams {
        let team_of: HashMap<Uuid, Option<String>> = store
            .devices()?
            .into_iter()
            .map(|d| (d.id, d.team))
            .collect();
        let within = found.iter().all(|seg| {
            team_of
                .get(&seg.segment.device_id)
                .and_then(Option::as_deref)
                .is_some_and(|t| teams.iter().any(|x| x == t))
        });
        if !within {
            return Err(DeleteError::NotFound(request.session));
        }
    }
    let from = found
        .iter()
        .map(|s| s.segment.recorded_at)
        .min()
        .unwrap_or_default();
    let to = found
        .iter()
        .map(|s| s.ended_at().max(s.segment.recorded_at + 1))
        .max()
        .unwrap_or(from + 1);
    let time = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s)
            .map_err(|_| DeleteError::NotFound(request.session))
    };
    let redact = RedactRequest {
        session: Some(request.session),
        device: None,
        from: time(from)?,
        to: time(to)?,
        case,
        reason: reason.clone(),
    };
    redact_as(vault, &redact, actor, ACTION_DELETE, Some(reason)).map_err(|e| match e {
        RedactError::Held { segment, hold } => DeleteError::Held { segment, hold },
        RedactError::NothingInRange => DeleteError::NotFound(request.session),
        RedactError::Audit(e) => DeleteError::Audit(e),
        RedactError::Store(e) => DeleteError::Store(e),
        other => DeleteError::Destroy(other),
    })
}
