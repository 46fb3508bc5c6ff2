//! The vault's storage layer: where metadata and sealed blobs live, behind two seams.
//!
//! - [`MetadataStore`] holds accounts, devices, segments, policy, audit and lifecycle records:
//!   [`SqliteStore`] (embedded, the default) and [`PostgresStore`] (at scale);
//! - [`BlobStore`] holds sealed files and signed manifests: [`LocalBlobStore`] (the data
//!   folder) and [`S3BlobStore`] (an S3-compatible bucket);
//! - [`StorageConfig`] (the `[storage]` section of `vault.toml`) opens the configured pair, and
//!   [`Layout`] names a deployment's files in its data folder.
//!
//! Nothing here knows about enrollment, roles or HTTP: the domain crate (`vigil-vault-core`)
//! builds on these traits. The conformance suites every backend must pass are behind the
//! `test-support` feature, so that integration tests run them against real servers without
//! shipping them.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blobs;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod layout;
pub mod metadata;
pub mod s3_blobs;
pub mod storage;

pub use blobs::{BlobError, BlobStore, LocalBlobStore};
pub use layout::Layout;
pub use metadata::{MetadataStore, PostgresStore, SqliteStore, StoreError};
pub use s3_blobs::{S3BlobStore, S3Settings};
pub use storage::{StorageConfig, StorageError};
