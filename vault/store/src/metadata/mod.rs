//! The metadata store: accounts, enrollment tokens, devices and segments.
//!
//! [`MetadataStore`] is the seam between the vault's logic and its database. It has two
//! implementations, [`SqliteStore`] (embedded, the default) and [`PostgresStore`] (at scale), and
//! one conformance suite ([`conformance`]) runs against both. The trait is synchronous: the
//! server calls it from blocking tasks, so a backend may block.

pub mod access;
pub mod device_keys;
pub mod lifecycle;
pub mod live;
pub mod policy;
mod postgres;
mod records;
mod sqlite;
mod store;

pub use self::live::{AgentStateRow, LiveStore};
pub use self::policy::{PolicyLayerRow, PolicyStore};

pub use self::postgres::{PgTls, PgTlsMode, PostgresStore, DEFAULT_POOL_SIZE};
pub use access::{
    AccessStore, Account, ApiTokenRecord, AuditQuery, MediaLinkRecord, RecordingFilter,
    RecordingRecord, SessionRecord, TotpRecord,
};
pub use device_keys::{DeviceKeyStore, RekeyOutcome, RetiredDeviceKey};
pub use lifecycle::LifecycleStore;
pub use records::{
    AuditDraft, AuditRecord, DeviceRecord, EnrollOutcome, SegmentFilter, SegmentRecord,
    SessionReport, SessionSequences, StoreError, TokenRecord, UserRecord,
};
pub use sqlite::SqliteStore;
pub use store::MetadataStore;
