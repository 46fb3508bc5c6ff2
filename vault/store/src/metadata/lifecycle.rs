//! The metadata of a recording's life after ingest: retention terms fixed per segment, blob
//! deletions (by retention or redaction), legal holds and signed redaction tombstones.
//!
//! [`LifecycleStore`] is a supertrait of [`super::MetadataStore`]; both backends implement it
//! (`sqlite/lifecycle.rs`, `postgres/lifecycle.rs`) and the conformance suite checks them
//! alike (`conformance::lifecycle_*`).

use uuid::Uuid;
use vigil_proto::MediaKind;

use super::{SegmentRecord, StoreError};

/// Why a blob was deleted.
pub const DELETED_EXPIRED: &str = "expired";
/// Why a blob was deleted: range redaction.
pub const DELETED_REDACTED: &str = "redacted";

/// The retention of one segment, fixed at ingest from the policy then in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionTerms {
    /// Version of the policy the terms come from.
    pub policy_version: i64,
    /// Recording end (the manifest's wall clock), Unix seconds.
    pub ended_at: i64,
    /// The voice blob may be deleted from this second on.
    pub voice_expires_at: i64,
    /// The screen blob may be deleted from this second on.
    pub screen_expires_at: i64,
}

/// When and why a blob was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// Unix seconds.
    pub at: i64,
    /// [`DELETED_EXPIRED`] or [`DELETED_REDACTED`].
    pub reason: String,
}

/// A segment with its retention terms and deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentLifecycle {
    /// The segment row.
    pub segment: SegmentRecord,
    /// `None` until fixed (rows stored before retention existed, or an interrupted ingest).
    pub terms: Option<RetentionTerms>,
    /// The voice blob's deletion.
    pub voice_deleted: Option<Deletion>,
    /// The screen blob's deletion.
    pub screen_deleted: Option<Deletion>,
}

impl SegmentLifecycle {
    /// The deletion of one kind's blob.
    pub fn deleted(&self, kind: MediaKind) -> Option<&Deletion> {
        match kind {
            MediaKind::Voice => self.voice_deleted.as_ref(),
            MediaKind::Screen => self.screen_deleted.as_ref(),
        }
    }

    /// When one kind's blob expires, if the terms are fixed.
    pub fn expires_at(&self, kind: MediaKind) -> Option<i64> {
        self.terms.map(|t| match kind {
            MediaKind::Voice => t.voice_expires_at,
            MediaKind::Screen => t.screen_expires_at,
        })
    }

    /// Recording end, or start when the end is not known.
    pub fn ended_at(&self) -> i64 {
        self.terms.map_or(self.segment.recorded_at, |t| t.ended_at)
    }
}

/// Which segments overlap a time range (`recorded_at < to` and end `> from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlapFilter {
    /// Only this session.
    pub session: Option<Uuid>,
    /// Only this device.
    pub device: Option<Uuid>,
    /// Range start, Unix seconds (inclusive).
    pub from: i64,
    /// Range end, Unix seconds (exclusive).
    pub to: i64,
}

/// What one legal hold covers; a hold covers a segment when any of its scopes does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldScope {
    /// Every segment of a session.
    Session(Uuid),
    /// Every segment of a device (agent), optionally only those overlapping `[from, to)`.
    Device {
        /// The device.
        device: Uuid,
        /// Range start, Unix seconds.
        from: Option<i64>,
        /// Range end, Unix seconds.
        to: Option<i64>,
    },
    /// Every segment overlapping `[from, to)`, of any device.
    Range {
        /// Range start, Unix seconds.
        from: i64,
        /// Range end, Unix seconds.
        to: i64,
    },
}

/// How a hold was released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRelease {
    /// Unix seconds.
    pub at: i64,
    /// Who released it.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// A legal hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRecord {
    /// The hold's id.
    pub id: Uuid,
    /// The legal case it serves.
    pub case_name: String,
    /// What it covers (no cap on the number).
    pub scopes: Vec<HoldScope>,
    /// Who placed it.
    pub created_by: String,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Set once released.
    pub released: Option<HoldRelease>,
}

/// What became of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// The hold is released now.
    Released(HoldRecord),
    /// It was released before (the first release is kept).
    AlreadyReleased(HoldRecord),
    /// No such hold.
    Unknown,
}

/// A signed redaction tombstone as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TombstoneRecord {
    /// The redacted segment.
    pub segment_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// Its sequence number.
    pub sequence: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// The signed tombstone ([`vigil_proto::tombstone::SignedTombstone`]) bytes.
    pub tombstone: Vec<u8>,
    /// SHA-256 of `tombstone`, hex.
    pub sha256: String,
}

/// The lifecycle operations of a metadata store.
pub trait LifecycleStore {
    /// [`super::MetadataStore::insert_segment`] with the segment's retention terms, in the same
    /// transaction (so a stored segment never lacks them, and they cost no commit of their own).
    fn insert_segment_with_terms(
        &self,
        segment: &SegmentRecord,
        terms: &RetentionTerms,
    ) -> Result<(), StoreError>;
    /// Fixes a segment's retention terms; `false` when the segment is unknown or its terms
    /// were fixed before (they never change once fixed).
    fn set_retention(&self, segment_id: Uuid, terms: &RetentionTerms) -> Result<bool, StoreError>;
    /// A segment with its lifecycle columns.
    fn segment_lifecycle(&self, segment_id: Uuid) -> Result<Option<SegmentLifecycle>, StoreError>;
    /// Segments whose terms are not fixed, by segment id after `after`, at most `limit`.
    fn segments_without_terms(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentRecord>, StoreError>;
    /// Segments with a blob expired at `now` and not yet deleted, by segment id after
    /// `after`, at most `limit`.
    fn segments_due(
        &self,
        now: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentLifecycle>, StoreError>;
    /// Segments overlapping a range, by session then sequence.
    fn segments_overlapping(
        &self,
        filter: &OverlapFilter,
    ) -> Result<Vec<SegmentLifecycle>, StoreError>;
    /// Records that a blob was deleted; `false` if it was recorded before (the first is kept)
    /// or the segment is unknown.
    fn mark_deleted(
        &self,
        segment_id: Uuid,
        kind: MediaKind,
        deletion: &Deletion,
    ) -> Result<bool, StoreError>;

    /// Stores a new hold with its scopes, atomically.
    fn insert_hold(&self, hold: &HoldRecord) -> Result<(), StoreError>;
    /// Holds, oldest first: the active ones only, or all.
    fn holds(&self, include_released: bool) -> Result<Vec<HoldRecord>, StoreError>;
    /// Releases a hold.
    fn release_hold(&self, id: Uuid, release: &HoldRelease) -> Result<ReleaseOutcome, StoreError>;

    /// Stores a tombstone; a segment has at most one (a duplicate is an error).
    fn insert_tombstone(&self, tombstone: &TombstoneRecord) -> Result<(), StoreError>;
    /// The tombstone of a segment.
    fn tombstone(&self, segment_id: Uuid) -> Result<Option<TombstoneRecord>, StoreError>;
}

impl<T: LifecycleStore + ?Sized> LifecycleStore for Box<T> {
    fn insert_segment_with_terms(
        &self,
        segment: &SegmentRecord,
        terms: &RetentionTerms,
    ) -> Result<(), StoreError> {
        (**self).insert_segment_with_terms(segment, terms)
    }
    fn set_retention(&self, segment_id: Uuid, terms: &RetentionTerms) -> Result<bool, StoreError> {
        (**self).set_retention(segment_id, terms)
    }
    fn segment_lifecycle(&self, segment_id: Uuid) -> Result<Option<SegmentLifecycle>, StoreError> {
        (**self).segment_lifecycle(segment_id)
    }
    fn segments_without_terms(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentRecord>, StoreError> {
        (**self).segments_without_terms(after, limit)
    }
    fn segments_due(
        &self,
        now: i64,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SegmentLifecycle>, StoreError> {
        (**self).segments_due(now, after, limit)
    }
    fn segments_overlapping(
        &self,
        filter: &OverlapFilter,
    ) -> Result<Vec<SegmentLifecycle>, StoreError> {
        (**self).segments_overlapping(filter)
    }
    fn mark_deleted(
        &self,
        segment_id: Uuid,
        kind: MediaKind,
        deletion: &Deletion,
    ) -> Result<bool, StoreError> {
        (**self).mark_deleted(segment_id, kind, deletion)
    }
    fn insert_hold(&self, hold: &HoldRecord) -> Result<(), StoreError> {
        (**self).insert_hold(hold)
    }
    fn holds(&self, include_released: bool) -> Result<Vec<HoldRecord>, StoreError> {
        (**self).holds(include_released)
    }
    fn release_hold(&self, id: Uuid, release: &HoldRelease) -> Result<ReleaseOutcome, StoreError> {
        (**self).release_hold(id, release)
    }
    fn insert_tombstone(&self, tombstone: &TombstoneRecord) -> Result<(), StoreError> {
        (**self).insert_tombstone(tombstone)
    }
    fn tombstone(&self, segment_id: Uuid) -> Result<Option<TombstoneRecord>, StoreError> {
        (**self).tombstone(segment_id)
    }
}

/// Scope kinds as stored.
pub(crate) const SCOPE_SESSION: &str = "session";
pub(crate) const SCOPE_DEVICE: &str = "device";
pub(crate) const SCOPE_RANGE: &str = "range";

/// A stored scope row back into a scope.
pub(crate) fn scope_from_row(
    kind: &str,
    target: Option<Uuid>,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<HoldScope, StoreError> {
    let bad = || StoreError::Corrupt(format!("hold scope {kind} {target:?} {from:?} {to:?}"));
    Ok(match kind {
        SCOPE_SESSION => HoldScope::Session(target.ok_or_else(bad)?),
        SCOPE_DEVICE => HoldScope::Device {
            device: target.ok_or_else(bad)?,
            from,
            to,
        },
        SCOPE_RANGE => HoldScope::Range {
            from: from.ok_or_else(bad)?,
            to: to.ok_or_else(bad)?,
        },
        _ => return Err(bad()),
    })
}

/// A scope as a stored row: (kind, target, from, to).
pub(crate) fn scope_to_row(
    scope: &HoldScope,
) -> (&'static str, Option<Uuid>, Option<i64>, Option<i64>) {
    match scope {
        HoldScope::Session(s) => (SCOPE_SESSION, Some(*s), None, None),
        HoldScope::Device { device, from, to } => (SCOPE_DEVICE, Some(*device), *from, *to),
        HoldScope::Range { from, to } => (SCOPE_RANGE, None, Some(*from), Some(*to)),
    }
}
