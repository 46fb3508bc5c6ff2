//! An opened deployment with its private keys: what the server runs on.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use uuid::Uuid;

use crate::admin::{Admin, OpenDataError};
use crate::config::VaultConfig;
use crate::secrets::{KeyBundleError, PrivateKeys, VaultKey};
use vigil_vault_store::blobs::{BlobError, BlobStore};
use vigil_vault_store::metadata::MetadataStore;
use vigil_vault_store::storage::StorageError;
use vigil_vault_store::Layout;

/// Why a sealed blob could not be opened for playback.
#[derive(Debug, thiserror::Error)]
pub enum OpenMediaError {
    /// The blob store failed (or the blob is gone).
    #[error(transparent)]
    Blob(#[from] vigil_vault_store::blobs::BlobError),
    /// The sealed file did not decrypt with the recording identity.
    #[error("decryption failed: {0}")]
    Decrypt(String),
}

/// Why a deployment could not be opened for serving.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data folder or its database.
    #[error(transparent)]
    Data(#[from] OpenDataError),
    /// The private-key bundle could not be read.
    #[error("{path}: {source}")]
    ReadKeys {
        /// The bundle.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The private-key bundle could not be decrypted.
    #[error(transparent)]
    Keys(#[from] KeyBundleError),
    /// The blob folder.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The configured storage backends.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Ingest lock stripes: enough that concurrent agents rarely share one.
const SESSION_LOCK_STRIPES: usize = 256;

/// A deployment opened with its vault key.
pub struct Vault {
    layout: Layout,
    config: VaultConfig,
    store: Box<dyn MetadataStore>,
    blobs: Box<dyn BlobStore>,
    /// The private keys, replaced whole when `keys rotate` rewrites the bundle
    /// ([`Vault::reload_keys`]).
    keys: std::sync::RwLock<std::sync::Arc<PrivateKeys>>,
    /// The vault key and the SHA-256 of the bundle last opened, to reopen a rotated bundle.
    bundle: Mutex<Option<(VaultKey, String)>>,
    /// Serializes the check-then-store step of ingest (duplicates, chain links) per session:
    /// a session maps to one of these stripes, so uploads of different sessions mostly run
    /// in parallel while two of one session never interleave.
    session_locks: Vec<Mutex<()>>,
    /// The policy snapshot the server's policy hub keeps current (ingest reads retention from
    /// it without a database query); `None` outside the server.
    policy: std::sync::RwLock<Option<std::sync::Arc<crate::policy::PolicySnapshot>>>,
    /// Sessions whose clock correction was audited since the server started.
    clock_noted: Mutex<std::collections::HashSet<Uuid>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("root", &self.layout.root())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Opens the deployment in `data` with the backends its `vault.toml` names (by default
    /// SQLite metadata and the local blob folder).
    pub fn open(data: &Path, key: &VaultKey) -> Result<Self, OpenError> {
        let admin = Admin::open(data)?;
        let layout = admin.layout().clone();
        let config = admin.config().clone();
        let sealed =
            std::fs::read(layout.private_keys()).map_err(|source| OpenError::ReadKeys {
                path: layout.private_keys().display().to_string(),
                source,
            })?;
        let keys = PrivateKeys::open(&sealed, key)?;
        let blobs = config.storage.open_blobs(&layout)?;
        let store = admin.into_store();
        let vault = Self::with_backends(layout, config, store, blobs, keys);
        *vault.bundle.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((key.clone(), vigil_proto::sha256_hex(&sealed)));
        Ok(vault)
    }

    /// A vault over explicit storage backends.
    pub fn with_backends(
        layout: Layout,
        config: VaultConfig,
        store: Box<dyn MetadataStore>,
        blobs: Box<dyn BlobStore>,
        keys: PrivateKeys,
    ) -> Self {
        Self {
            layout,
            config,
            store,
            blobs,
            keys: std::sync::RwLock::new(std::sync::Arc::new(keys)),
            bundle: Mutex::new(None),
            session_locks: (0..SESSION_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            policy: std::sync::RwLock::new(None),
            clock_noted: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Whether this is the first clock correction of `session` since the server started
    /// (the set is emptied at 100,000 sessions: a correction is then audited again).
    pub(crate) fn first_clock_note(&self, session: Uuid) -> bool {
        let mut noted = self.clock_noted.lock().unwrap_or_else(|p| p.into_inner());
        if noted.len() >= 100_000 {
            noted.clear();
        }
        noted.insert(session)
    }

    /// The policy snapshot kept current by the server, if it runs in this process.
    pub fn cached_policy(&self) -> Option<std::sync::Arc<crate::policy::PolicySnapshot>> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the cached policy snapshot (the policy hub, on every change).
    pub(crate) fn cache_policy(&self, snapshot: std::sync::Arc<crate::policy::PolicySnapshot>) {
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
    }

    /// Holds the ingest lock of `session`'s stripe.
    pub(crate) fn session_lock(&self, session: Uuid) -> MutexGuard<'_, ()> {
        let stripe = (session.as_u128() % self.session_locks.len() as u128) as usize;
        // Nothing guarded can be left half-done by a panic: a poisoned lock is still usable.
        self.session_locks[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The data folder's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `vault.toml`.
    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// The metadata store.
    pub fn store(&self) -> &dyn MetadataStore {
        self.store.as_ref()
    }

    /// The blob store.
    pub fn blobs(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    pub(crate) fn keys(&self) -> std::sync::Arc<PrivateKeys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Opens the key bundle again if `keys rotate` rewrote it since it was last opened, so a
    /// running server signs, seals and opens with the new keys (the policy watcher calls it
    /// when the policy version moves, which every rotation makes it do). `Ok(true)`: reloaded.
    pub fn reload_keys(&self) -> Result<bool, OpenError> {
        let mut bundle = self.bundle.lock().unwrap_or_else(|e| e.into_inner());
        let Some((key, digest)) = bundle.as_mut() else {
            return Ok(false);
        };
        let path = self.layout.private_keys();
        let sealed = std::fs::read(&path).map_err(|source| OpenError::ReadKeys {
            path: path.display().to_string(),
            source,
        })?;
        let now = vigil_proto::sha256_hex(&sealed);
        if now == *digest {
            return Ok(false);
        }
        let keys = PrivateKeys::open(&sealed, key)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(keys);
        *digest = now;
        tracing::info!("key bundle reloaded (keys rotated)");
        Ok(true)
    }

    /// The TLS server's private key (PKCS#8 PEM), for the HTTPS listener.
    pub fn tls_server_key(&self) -> age::secrecy::SecretString {
        self.keys().tls_server_key.clone()
    }

    /// A decrypting reader over one sealed blob, held in memory. age authenticates each 64 KiB
    /// chunk before the reader returns it, so no unauthenticated plaintext goes out; nothing
    /// decrypted touches the disk.
    pub fn open_media(
        &self,
        session: Uuid,
        sequence: u64,
        kind: vigil_proto::MediaKind,
    ) -> Result<Box<dyn std::io::Read + Send>, OpenMediaError> {
        let file = vigil_proto::naming::blob_file(sequence, kind);
        let sealed = self.blobs().get(session, &file)?;
        let decrypt = |e: &dyn std::fmt::Display| OpenMediaError::Decrypt(e.to_string());
        let decryptor =
            age::Decryptor::new(std::io::Cursor::new(sealed)).map_err(|e| decrypt(&e))?;
        let keys = self.keys();
        let reader = decryptor
            .decrypt(keys.recording_identities())
            .map_err(|e| decrypt(&e))?;
        Ok(Box::new(reader))
    }

    /// The recording recipients every agent seals to (`age1…`): the vault's own, then the
    /// escrow recipients of `vault.toml`.
    pub fn recipients(&self) -> Vec<String> {
        let mut all = vec![self.keys().recording.to_public().to_string()];
        all.extend(self.config.escrow_recipients.iter().cloned());
        all
    }

    /// The policy-signing public key, base64.
    pub fn policy_public_key(&self) -> String {
        B64.encode(self.keys().policy.verifying_key().as_bytes())
    }

    /// The receipt-signing public key, base64.
    pub fn receipt_public_key(&self) -> String {
        B64.encode(self.keys().receipt.verifying_key().as_bytes())
    }
}
