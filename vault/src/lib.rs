//! The Vigil vault (brief §6, issue 4): an embedded deployment in one data folder, enrollment of
//! devices with one-use tokens, verified and idempotent ingest of sealed segments with signed
//! receipts, and per-session gap reports.
//!
//! Layering follows `rage`: this library holds every operation with a typed error per operation;
//! the `vigil-vault` binary only parses arguments and prints.
//!
//! - [`init()`] creates a deployment ([`Layout`] names its files);
//! - [`Vault`] is an opened deployment with its private keys, used by the server;
//! - [`server`] serves the HTTPS API;
//! - [`access`] names the roles, their permissions and every route's access rule;
//!   [`api_auth`] resolves who calls (session, API token, Basic) and [`accounts`] manages
//!   accounts; [`recordings`] serves search, play and download;
//! - [`admin`] holds the offline commands (tokens, devices, gaps) that need no private key;
//! - [`audit`] records who did what and why, and re-checks the audit log's hash chain;
//! - [`identity`] hands the recording identity out (audited), [`export`] writes an evidence
//!   export and [`verify_export`] checks one offline;
//! - [`store::MetadataStore`] and [`blobs::BlobStore`] are the storage seams (SQLite and a local
//!   folder by default; [`store::PostgresStore`] and [`s3_blobs::S3BlobStore`] at scale).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
pub mod accounts;
pub mod admin;
pub mod api_auth;
pub mod audit;
#[doc(hidden)]
pub mod blob_conformance;
pub mod blobs;
mod console;
pub mod delete;
pub mod enroll;
pub mod export;
pub mod gaps;
pub mod heartbeat;
pub mod holds;
pub mod identity;
pub mod ingest;
mod init;
mod layout;
mod lifecycle_api;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod policy;
mod policy_api;
pub mod policy_push;
pub mod recordings;
pub mod redact;
pub mod retention;
pub mod s3_blobs;
pub mod secrets;
pub mod server;
pub mod storage;
pub mod store;
mod vault;
pub mod verify_export;

pub use console::parse_when;
pub use init::{init, InitError, InitOptions, InitReport};
pub use layout::{Layout, VaultConfig};
pub use vault::{OpenError, Vault};

/// Current time in UTC (one place, so tests and code agree on the clock).
pub(crate) fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// RFC 3339 text of a time, for storage and receipts.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
