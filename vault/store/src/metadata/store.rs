//! The metadata operations the vault needs, as one trait over the per-area traits.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::access::AccessStore;
use super::device_keys::DeviceKeyStore;
use super::lifecycle::LifecycleStore;
use super::live::LiveStore;
use super::policy::PolicyStore;
use super::records::{
    AuditDraft, AuditRecord, DeviceRecord, EnrollOutcome, SegmentFilter, SegmentRecord,
    SessionReport, SessionSequences, StoreError, TokenRecord, UserRecord,
};

/// The metadata operations the vault needs; one implementation per database.
pub trait MetadataStore:
    PolicyStore
    + LiveStore
    + LifecycleStore
    + AccessStore
    + DeviceKeyStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Adds a user account. Fails if the name exists.
    fn create_user(&self, user: &UserRecord) -> Result<(), StoreError>;
    /// A user account by name.
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Stores a new enrollment token.
    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// In one transaction: checks the token, then stores `device` (or finds its key enrolled)
    /// and marks the token used. A token is never used twice.
    fn enroll(
        &self,
        token_sha256: &str,
        now: i64,
        device: &DeviceRecord,
    ) -> Result<EnrollOutcome, StoreError>;

    /// The device holding this public key, revoked or not.
    fn device_by_key(&self, public_key: &[u8; 32]) -> Result<Option<DeviceRecord>, StoreError>;
    /// Every device, in enrollment order.
    fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Revokes a device; `false` when no such device exists. Revoking twice keeps the first time.
    fn revoke_device(&self, id: Uuid, now: i64) -> Result<bool, StoreError>;

    /// The segment at a position of a session.
    fn segment(&self, session: Uuid, sequence: i64) -> Result<Option<SegmentRecord>, StoreError>;
    /// The segment with a segment id.
    fn segment_by_id(&self, segment_id: Uuid) -> Result<Option<SegmentRecord>, StoreError>;
    /// The device that owns a session (the signer of its stored segments).
    fn session_device(&self, session: Uuid) -> Result<Option<Uuid>, StoreError>;
    /// Stores a segment's metadata. The caller has checked every invariant; a duplicate key is
    /// an error.
    fn insert_segment(&self, segment: &SegmentRecord) -> Result<(), StoreError>;
    /// Stored sequence numbers per session (one session, or all).
    fn session_sequences(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionSequences>, StoreError>;

    /// Segments matching a filter, by session then sequence.
    fn segments(&self, filter: &SegmentFilter) -> Result<Vec<SegmentRecord>, StoreError>;

    /// Stores a device's latest report on a session (replacing the previous one).
    fn put_session_report(&self, report: &SessionReport) -> Result<(), StoreError>;
    /// The latest reports (one session, or all).
    fn session_reports(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionReport>, StoreError>;

    /// Appends an event to the audit log, chained to the last one, atomically.
    fn append_audit(&self, draft: &AuditDraft) -> Result<AuditRecord, StoreError>;
    /// Audit records with `seq > after`, in order, at most `limit`.
    fn audit_records(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError>;

    /// A cheap round trip, for health checks.
    fn ping(&self) -> Result<(), StoreError>;
}

/// A boxed store is a store (so `&Box<dyn MetadataStore>` passes where a store is expected).
impl<T: MetadataStore + ?Sized> MetadataStore for Box<T> {
    fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        (**self).create_user(user)
    }
    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        (**self).user(name)
    }
    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        (**self).insert_token(token)
    }
    fn enroll(
        &self,
        token_sha256: &str,
        now: i64,
        device: &DeviceRecord,
    ) -> Result<EnrollOutcome, StoreError> {
        (**self).enroll(token_sha256, now, device)
    }
    fn device_by_key(&self, public_key: &[u8; 32]) -> Result<Option<DeviceRecord>, StoreError> {
        (**self).device_by_key(public_key)
    }
    fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        (**self).devices()
    }
    fn revoke_device(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        (**self).revoke_device(id, now)
    }
    fn segment(&self, session: Uuid, sequence: i64) -> Result<Option<SegmentRecord>, StoreError> {
        (**self).segment(session, sequence)
    }
    fn segment_by_id(&self, segment_id: Uuid) -> Result<Option<SegmentRecord>, StoreError> {
        (**self).segment_by_id(segment_id)
    }
    fn session_device(&self, session: Uuid) -> Result<Option<Uuid>, StoreError> {
        (**self).session_device(session)
    }
    fn insert_segment(&self, segment: &SegmentRecord) -> Result<(), StoreError> {
        (**self).insert_segment(segment)
    }
    fn session_sequences(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionSequences>, StoreError> {
        (**self).session_sequences(session)
    }
    fn segments(&self, filter: &SegmentFilter) -> Result<Vec<SegmentRecord>, StoreError> {
        (**self).segments(filter)
    }
    fn put_session_report(&self, report: &SessionReport) -> Result<(), StoreError> {
        (**self).put_session_report(report)
    }
    fn session_reports(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionReport>, StoreError> {
        (**self).session_reports(session)
    }
    fn append_audit(&self, draft: &AuditDraft) -> Result<AuditRecord, StoreError> {
        (**self).append_audit(draft)
    }
    fn audit_records(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        (**self).audit_records(after, limit)
    }
    fn ping(&self) -> Result<(), StoreError> {
        (**self).ping()
    }
}
