//! `vigil-vault init`: creates an embedded deployment in a data folder.

use std::path::{Path, PathBuf};
use vigil_files::Access;

use age::secrecy::SecretString;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;

use crate::config::{VaultConfig, LAYOUT_FORMAT};
use crate::secrets::{KeyBundleError, KeyHistory, PrivateKeys, VaultKey};
use uuid::Uuid;
use vigil_vault_store::Layout;

use vigil_vault_store::metadata::{StoreError, UserRecord};
use vigil_vault_store::storage::{StorageConfig, StorageError};

/// What `init` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data folder (created if missing; must not hold a deployment).
    pub data: PathBuf,
    /// Host names and IP addresses for the server certificate; empty means
    /// `localhost`, `127.0.0.1` and `::1`.
    pub hosts: Vec<String>,
    /// Name of the first admin account.
    pub admin: String,
    /// The key that encrypts the private keys at rest.
    pub key: VaultKey,
    /// Storage backends (default: SQLite and the local blob folder).
    pub storage: StorageConfig,
    /// Offline escrow recipients (`age1…`) sealed to beside the vault's own.
    pub escrow_recipients: Vec<String>,
}

/// What `init` made; the admin password appears here once and is stored only as a hash.
#[derive(Debug)]
pub struct InitReport {
    /// The data folder's layout.
    pub layout: Layout,
    /// The admin account's name.
    pub admin: String,
    /// Its one-time password.
    pub admin_password: SecretString,
    /// The recording recipient (`age1…`).
    pub recording_recipient: String,
    /// The escrow recipients agents also seal to.
    pub escrow_recipients: Vec<String>,
    /// The policy-signing public key (base64).
    pub policy_public_key: String,
    /// The receipt-signing public key (base64).
    pub receipt_public_key: String,
    /// Host names in the server certificate.
    pub hosts: Vec<String>,
}

/// Why `init` failed. A failed `init` may leave a partial folder: `vault.toml`, written last,
/// is absent then, and nothing else will open it.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The folder already holds a deployment.
    #[error("{0} already holds a vault deployment")]
    AlreadyInitialized(PathBuf),
    /// A host name is not valid in a certificate.
    #[error("host name {0:?} is not a valid DNS name or IP address")]
    BadHost(String),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The private keys could not be encrypted.
    #[error(transparent)]
    Keys(#[from] KeyBundleError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing the admin password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
    /// The TLS material could not be made or stored.
    #[error(transparent)]
    TlsSetup(#[from] crate::tls::TlsError),
    /// The configured storage backends are unusable or unreachable.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// An escrow recipient is not an age X25519 recipient.
    #[error("{0}")]
    BadEscrow(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_file(path: &Path, bytes: &[u8], access: Access) -> Result<(), InitError> {
    vigil_files::create_new(path, bytes, access).map_err(io_err(path))
}

/// Creates a deployment: keys, certificates, metadata, blob folder and the first admin.
pub fn init(options: InitOptions) -> Result<InitReport, InitError> {
    let layout = Layout::new(&options.data);
    if layout.config().exists() || layout.metadata().exists() {
        return Err(InitError::AlreadyInitialized(options.data));
    }
    options.storage.validate()?;
    crate::config::check_escrow_recipients(&options.escrow_recipients)
        .map_err(InitError::BadEscrow)?;
    let hosts = if options.hosts.is_empty() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        options.hosts.clone()
    };
    let tls = crate::tls::make_tls(&hosts).map_err(|e| match e {
        crate::tls::TlsError::BadHost(h) => InitError::BadHost(h),
        other => InitError::TlsSetup(other),
    })?;
    for dir in [
        layout.root().to_owned(),
        layout.keys(),
        layout.tls(),
        layout.blobs(),
        layout.staging(),
    ] {
        // Sealed recordings, keys and metadata: the deployment's service account alone.
        vigil_files::private_dir(&dir).map_err(io_err(&dir))?;
    }

    let keys = PrivateKeys {
        recording: age::x25519::Identity::generate(),
        policy: SigningKey::generate(&mut rand::rngs::OsRng),
        receipt: SigningKey::generate(&mut rand::rngs::OsRng),
        tls_ca_key: SecretString::from(tls.ca_key_pem),
        tls_server_key: SecretString::from(tls.server_key_pem),
        history: KeyHistory {
            recording_created_at: crate::clock::now().unix_timestamp(),
            policy_created_at: crate::clock::now().unix_timestamp(),
            receipt_created_at: crate::clock::now().unix_timestamp(),
            ..Default::default()
        },
    };
    let recording_recipient = keys.recording.to_public().to_string();
    let policy_public_key = B64.encode(keys.policy.verifying_key().as_bytes());
    let receipt_public_key = B64.encode(keys.receipt.verifying_key().as_bytes());
    write_file(
        &layout.private_keys(),
        &keys.seal(&options.key)?,
        Access::Private,
    )?;
    write_file(
        &layout.recording_pub(),
        format!("{recording_recipient}\n").as_bytes(),
        Access::Public,
    )?;
    write_file(
        &layout.policy_pub(),
        format!("{policy_public_key}\n").as_bytes(),
        Access::Public,
    )?;
    write_file(
        &layout.receipt_pub(),
        format!("{receipt_public_key}\n").as_bytes(),
        Access::Public,
    )?;
    write_file(&layout.ca_cert(), tls.ca_pem.as_bytes(), Access::Public)?;
    write_file(
        &layout.server_cert(),
        tls.chain_pem.as_bytes(),
        Access::Public,
    )?;
    crate::tls::write_expiry(&layout, tls.not_after)?;

    // Both backends are reachable (a blob listing proves the bucket and credentials).
    let store = options.storage.open_metadata(&layout)?;
    options
        .storage
        .open_blobs(&layout)?
        .list(Uuid::nil())
        .map_err(StorageError::from)?;
    let password = crate::credentials::random_secret(15);
    store.create_user(&UserRecord {
        name: options.admin.clone(),
        role: "admin".into(),
        password_hash: crate::credentials::hash_password(&password)
            .map_err(|e| InitError::Password(e.to_string()))?,
        must_change_password: true,
    })?;
    drop(store);

    let config = VaultConfig {
        format: LAYOUT_FORMAT,
        hosts: hosts.clone(),
        created_at: crate::clock::rfc3339(crate::clock::now()),
        storage: options.storage.clone(),
        retention: Default::default(),
        audit: Default::default(),
        accounts: Default::default(),
        escrow_recipients: options.escrow_recipients.clone(),
        http: Default::default(),
    };
    let text = toml::to_string(&config).expect("the config always serializes");
    write_file(&layout.config(), text.as_bytes(), Access::Public)?;
    Ok(InitReport {
        layout,
        admin: options.admin,
        admin_password: SecretString::from(password),
        recording_recipient,
        escrow_recipients: options.escrow_recipients.clone(),
        policy_public_key,
        receipt_public_key,
        hosts,
    })
}
