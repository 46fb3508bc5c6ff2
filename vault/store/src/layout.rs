//! The files of a deployment inside its data folder.

use std::path::{Path, PathBuf};

/// Where everything of a deployment lives, relative to its data folder:
///
/// ```text
/// DIR/vault.toml               settings (host names, storage backends)
/// DIR/metadata.sqlite          metadata (SQLite, WAL), unless `[storage] metadata = "postgres"`
/// DIR/blobs/<session>/…        sealed blobs and signed manifests, as the agent's spool names them
/// DIR/staging/                 files of segments being received (same file system as blobs/)
/// DIR/keys/private.age         every private key, age-encrypted with the vault key (scrypt)
/// DIR/keys/recording.pub       the recording recipient (age1…)
/// DIR/keys/policy.pub          the policy-signing public key (Ed25519, base64)
/// DIR/keys/receipt.pub         the receipt-signing public key (Ed25519, base64)
/// DIR/tls/ca.pem               the deployment's CA certificate (give it to agents)
/// DIR/tls/server.pem           the server certificate chain (server, then CA)
/// ```
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the deployment in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// The data folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `vault.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("vault.toml")
    }
    /// The SQLite metadata database.
    pub fn metadata(&self) -> PathBuf {
        self.root.join("metadata.sqlite")
    }
    /// The blob folder.
    pub fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }
    /// Where segment files are written before they are moved into `blobs/`.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    /// Where upload bodies are streamed while they arrive, before they are verified (sealed
    /// bytes only; emptied when the server starts).
    pub fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }
    /// Receipt keys replaced by rotation (base64, one a line): anchors and receipts they
    /// signed still verify without the key bundle.
    pub fn receipt_retired_pub(&self) -> PathBuf {
        self.keys().join("receipt-retired.pub")
    }
    /// The key folder.
    pub fn keys(&self) -> PathBuf {
        self.root.join("keys")
    }
    /// The encrypted private-key bundle.
    pub fn private_keys(&self) -> PathBuf {
        self.keys().join("private.age")
    }
    /// The recording recipient.
    pub fn recording_pub(&self) -> PathBuf {
        self.keys().join("recording.pub")
    }
    /// The policy-signing public key.
    pub fn policy_pub(&self) -> PathBuf {
        self.keys().join("policy.pub")
    }
    /// The receipt-signing public key.
    pub fn receipt_pub(&self) -> PathBuf {
        self.keys().join("receipt.pub")
    }
    /// The TLS folder.
    pub fn tls(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// The CA certificate (PEM).
    pub fn ca_cert(&self) -> PathBuf {
        self.tls().join("ca.pem")
    }
    /// The server certificate chain (PEM: server, then CA).
    pub fn server_cert(&self) -> PathBuf {
        self.tls().join("server.pem")
    }
}
