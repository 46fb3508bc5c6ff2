//! Which storage backends a deployment uses: the optional `[storage]` section of `vault.toml`.
//!
//! ```toml
//! [storage]
//! metadata = "postgres"              # or "sqlite" (default: metadata.sqlite in the data folder)
//! postgres_url = "postgres://vigil@db.internal/vigil"
//! postgres_tls = "verify-full"       # or "disable"; default: verify-full unless on loopback
//! postgres_ca_file = "/etc/vigil-vault/db-ca.pem"   # default: the platform's roots
//! blobs = "s3"                       # or "local" (default: blobs/ in the data folder)
//! s3_endpoint = "https://s3.internal:9000"
//! s3_bucket = "vigil"
//! s3_region = "us-east-1"
//! s3_prefix = "site-a"
//! s3_ca_file = "/etc/vigil-vault/s3-ca.pem"         # a private CA for the endpoint
//! ```
//!
//! Secrets never live in `vault.toml`: `VIGIL_VAULT_PG_URL` (a full URL, password included)
//! takes precedence over `postgres_url`, and S3 credentials come from `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`.

use serde::{Deserialize, Serialize};

use crate::blobs::{BlobError, BlobStore, LocalBlobStore};
use crate::layout::Layout;
use crate::metadata::{
    MetadataStore, PgTls, PgTlsMode, PostgresStore, SqliteStore, StoreError, DEFAULT_POOL_SIZE,
};
use crate::s3_blobs::{S3BlobStore, S3Settings};

/// The environment variable that holds the PostgreSQL URL with its password.
pub const PG_URL_ENV: &str = "VIGIL_VAULT_PG_URL";
/// The environment variable of the S3 access key id.
pub const S3_KEY_ID_ENV: &str = "AWS_ACCESS_KEY_ID";
/// The environment variable of the S3 secret key.
pub const S3_SECRET_ENV: &str = "AWS_SECRET_ACCESS_KEY";

/// Where metadata lives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataBackend {
    /// `metadata.sqlite` in the data folder.
    #[default]
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Where blobs live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobBackend {
    /// `blobs/` in the data folder.
    #[default]
    Local,
    /// An S3-compatible bucket.
    S3,
}

/// The `[storage]` section of `vault.toml` (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Metadata backend.
    pub metadata: MetadataBackend,
    /// PostgreSQL URL without secrets (`VIGIL_VAULT_PG_URL` overrides it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
    /// TLS to PostgreSQL: `verify-full` (certificate and host name) or `disable`; absent: the
    /// URL's `sslmode`, else verify-full unless every host is loopback or a socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_tls: Option<PgTlsMode>,
    /// PEM file of the CA(s) that issue the database's certificate (absent: the platform's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_ca_file: Option<std::path::PathBuf>,
    /// Connections to PostgreSQL (default 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_pool: Option<usize>,
    /// Blob backend.
    pub blobs: BlobBackend,
    /// S3 service URL (absent: AWS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_bucket: Option<String>,
    /// S3 region (default `us-east-1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// Key prefix in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_prefix: Option<String>,
    /// PEM file of a private CA that issues the S3 endpoint's certificate (added to the
    /// platform's roots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_ca_file: Option<std::path::PathBuf>,
}

/// Why the configured backends could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A setting is missing or malformed.
    #[error("[storage] in vault.toml: {0}")]
    Config(String),
    /// The metadata store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store.
    #[error(transparent)]
    Blobs(#[from] BlobError),
}

impl StorageConfig {
    /// True for the embedded defaults (then `vault.toml` needs no `[storage]` section).
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }

    /// Refuses settings that could leak a secret into `vault.toml`, and incomplete ones.
    pub fn validate(&self) -> Result<(), StorageError> {
        if let Some(url) = &self.postgres_url {
            if url_has_password(url) {
                return Err(StorageError::Config(format!(
                    "postgres_url must not hold a password: put the whole URL in {PG_URL_ENV}"
                )));
            }
        }
        if self.blobs == BlobBackend::S3 && self.s3_bucket.as_deref().unwrap_or("").is_empty() {
            return Err(StorageError::Config(
                "blobs = \"s3\" needs s3_bucket".into(),
            ));
        }
        Ok(())
    }

    /// Opens the metadata store: SQLite in the data folder, or PostgreSQL.
    pub fn open_metadata(&self, layout: &Layout) -> Result<Box<dyn MetadataStore>, StorageError> {
        Ok(match self.metadata {
            MetadataBackend::Sqlite => Box::new(SqliteStore::open(&layout.metadata())?),
            MetadataBackend::Postgres => {
                let url = std::env::var(PG_URL_ENV)
                    .ok()
                    .filter(|u| !u.is_empty())
                    .or_else(|| self.postgres_url.clone())
                    .ok_or_else(|| {
                        StorageError::Config(format!(
                            "metadata = \"postgres\" needs postgres_url or {PG_URL_ENV}"
                        ))
                    })?;
                let pool = self.postgres_pool.unwrap_or(DEFAULT_POOL_SIZE);
                let tls = PgTls {
                    mode: self.postgres_tls,
                    ca_file: self.postgres_ca_file.clone(),
                };
                Box::new(PostgresStore::open_with(&url, pool, &tls)?)
            }
        })
    }

    /// Opens the blob store: the data folder's `blobs/`, or an S3 bucket.
    pub fn open_blobs(&self, layout: &Layout) -> Result<Box<dyn BlobStore>, StorageError> {
        Ok(match self.blobs {
            BlobBackend::Local => Box::new(LocalBlobStore::new(layout.blobs(), layout.staging())?),
            BlobBackend::S3 => Box::new(S3BlobStore::new(&self.s3_settings()?)?),
        })
    }

    /// The S3 settings with credentials from the environment.
    pub fn s3_settings(&self) -> Result<S3Settings, StorageError> {
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| StorageError::Config(format!("blobs = \"s3\" needs {name}")))
        };
        Ok(S3Settings {
            endpoint: self.s3_endpoint.clone(),
            bucket: self
                .s3_bucket
                .clone()
                .ok_or_else(|| StorageError::Config("blobs = \"s3\" needs s3_bucket".into()))?,
            region: self.s3_region.clone().unwrap_or_else(|| "us-east-1".into()),
            prefix: self.s3_prefix.clone().unwrap_or_default(),
            access_key_id: env(S3_KEY_ID_ENV)?,
            secret_access_key: env(S3_SECRET_ENV)?,
            ca_file: self.s3_ca_file.clone(),
        })
    }
}

/// Whether a `postgres://user:password@…` URL (or `password=` key-value text) holds a password.
fn url_has_password(url: &str) -> bool {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        return authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
            || rest.contains("password=");
    }
    url.contains("password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_section_and_passwords_are_refused() {
        assert!(StorageConfig::default().is_default());
        let parsed: StorageConfig =
            toml::from_str("metadata = \"postgres\"\nblobs = \"s3\"\ns3_bucket = \"b\"").unwrap();
        assert_eq!(parsed.metadata, MetadataBackend::Postgres);
        assert_eq!(parsed.blobs, BlobBackend::S3);
        parsed.validate().unwrap();
        for bad in [
            "postgres://vigil:secret@db/vigil",
            "postgresql://u:p@h:5432/d?sslmode=disable",
            "host=db user=vigil password=secret",
        ] {
            let config = StorageConfig {
                postgres_url: Some(bad.into()),
                ..Default::default()
            };
            assert!(config.validate().is_err(), "{bad}");
        }
        for good in ["postgres://vigil@db:5432/vigil", "host=db user=vigil"] {
            assert!(!url_has_password(good), "{good}");
        }
        assert!(toml::from_str::<StorageConfig>("blob = \"s3\"").is_err());
    }
}
