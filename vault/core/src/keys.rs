//! Key rotation and cryptoperiods (issue 13 §12; PCI DSS 3.6, 3.7): `vigil-vault keys rotate`
//! replaces a key, `vigil-vault keys status` says how old each key is against its period.
//!
//! - **Recording identity** (seals every blob): the new recipient goes to agents in their
//!   next signed policy; the old identity stays in the bundle to open what was sealed to it,
//!   and ingest accepts blobs sealed to it for
//!   [`crate::secrets::RETIRED_RECORDING_GRACE_DAYS`].
//! - **Policy key**: the old key endorses the new one (`vigil_proto::key_rotation`); every
//!   statement carries the endorsements, so an agent that trusts only the key it enrolled with
//!   (or that IT pinned) follows the chain. Only the public half of the old key is kept.
//! - **Receipt key**: the policy key endorses the new one for agents; exports list the old
//!   keys in their signed index so old receipts still verify.
//!
//! A rotation writes the bundle (sealed with the vault key), the public key file, an audit
//! record, and re-issues the organization's policy layer unchanged: the version moves, so a
//! running server reloads the bundle ([`crate::Vault::reload_keys`]) and every agent gets a
//! statement naming the new keys within seconds.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use vigil_files::Access;
use vigil_proto::key_rotation::{EndorsedRole, KeyEndorsement, SignedEndorsement};

use crate::admin::{Admin, OpenDataError};
use crate::secrets::{KeyBundleError, PrivateKeys, RetiredIdentity, RetiredKey, VaultKey};
use vigil_vault_store::metadata::{MetadataStore, StoreError};
use vigil_vault_store::Layout;

/// Audit action: a key was rotated (target: which, the old and the new public key).
pub const ACTION_ROTATE: &str = "keys.rotate";

/// Cryptoperiod of the recording identity: one year of recordings per key.
pub const RECORDING_CRYPTOPERIOD_DAYS: i64 = 365;
/// Cryptoperiod of the policy and receipt signing keys.
pub const SIGNING_CRYPTOPERIOD_DAYS: i64 = 730;
/// Cryptoperiod of a device key (re-enrollment replaces it).
pub const DEVICE_CRYPTOPERIOD_DAYS: i64 = 730;
/// Cryptoperiod of the TLS CA (agents pin it: replaced with a reinstall of their settings).
pub const CA_CRYPTOPERIOD_DAYS: i64 = 3650;

/// A key `keys rotate` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The age X25519 recording identity.
    Recording,
    /// The Ed25519 policy-signing key.
    Policy,
    /// The Ed25519 receipt-signing key.
    Receipt,
}

impl KeyKind {
    /// The name used on the command line and in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Recording => "recording",
            KeyKind::Policy => "policy",
            KeyKind::Receipt => "receipt",
        }
    }
}

/// Why a rotation or a status check failed.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// No reason was stated.
    #[error("a reason is required to rotate a key (--reason)")]
    MissingReason,
    /// The data folder could not be opened.
    #[error(transparent)]
    Data(#[from] OpenDataError),
    /// The bundle could not be opened or sealed.
    #[error(transparent)]
    Bundle(#[from] KeyBundleError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The metadata store failed (audit, policy).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The endorsement could not be signed.
    #[error("endorsement: {0}")]
    Sign(#[from] vigil_proto::SignedError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeysError {
    let path = path.display().to_string();
    move |source| KeysError::Io { path, source }
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// Which key.
    pub kind: KeyKind,
    /// The old public key (`age1…` or base64).
    pub old: String,
    /// The new public key.
    pub new: String,
    /// The policy version that announces it to agents.
    pub policy_version: i64,
}

/// Replaces `kind` (see the module documentation); `actor` and `reason` go to the audit log
/// and the policy history.
pub fn rotate(
    data: &Path,
    vault_key: &VaultKey,
    kind: KeyKind,
    actor: &str,
    reason: &str,
) -> Result<Rotated, KeysError> {
    let reason = crate::audit::stated_reason(Some(reason)).ok_or(KeysError::MissingReason)?;
    let admin = Admin::open(data)?;
    let layout = admin.layout().clone();
    let path = layout.private_keys();
    let sealed = std::fs::read(&path).map_err(io(&path))?;
    let mut keys = PrivateKeys::open(&sealed, vault_key)?;
    let now = crate::clock::now();
    let (old, new) = replace(&mut keys, kind, now)?;
    // The record first: a rotation nobody can see did not happen.
    crate::audit::record(
        admin.store(),
        actor,
        ACTION_ROTATE,
        Some(format!("{} {old} -> {new}", kind.as_str())),
        Some(reason.clone()),
    )?;
    vigil_files::write_private(&path, &keys.seal(vault_key)?).map_err(io(&path))?;
    let public_path = match kind {
        KeyKind::Recording => layout.recording_pub(),
        KeyKind::Policy => layout.policy_pub(),
        KeyKind::Receipt => layout.receipt_pub(),
    };
    vigil_files::replace(&public_path, format!("{new}\n").as_bytes(), Access::Public)
        .map_err(io(&public_path))?;
    if kind == KeyKind::Receipt {
        // Anchors and receipts the old key signed are checked without the bundle too.
        let retired = layout.receipt_retired_pub();
        let text: String = keys
            .history
            .retired_receipt_keys
            .iter()
            .map(|k| format!("{}\n", k.public_key))
            .collect();
        vigil_files::replace(&retired, text.as_bytes(), Access::Public).map_err(io(&retired))?;
    }
    let policy_version = announce(admin.store(), actor, &reason, kind)?;
    tracing::info!(key = kind.as_str(), policy_version, "key rotated");
    Ok(Rotated {
        kind,
        old,
        new,
        policy_version,
    })
}

/// Puts a new `kind` key in `keys`, keeping what rotation keeps of the old one.
fn replace(
    keys: &mut PrivateKeys,
    kind: KeyKind,
    now: time::OffsetDateTime,
) -> Result<(String, String), KeysError> {
    let at = now.unix_timestamp();
    let history = &mut keys.history;
    Ok(match kind {
        KeyKind::Recording => {
            let new = age::x25519::Identity::generate();
            let old = std::mem::replace(&mut keys.recording, new);
            let names = (
                old.to_public().to_string(),
                keys.recording.to_public().to_string(),
            );
            history.retired_recording.push(RetiredIdentity {
                identity: old,
                retired_at: at,
            });
            history.recording_created_at = at;
            (names.0, names.1)
        }
        KeyKind::Policy | KeyKind::Receipt => {
            let new = SigningKey::generate(&mut rand::rngs::OsRng);
            // The policy key vouches for both: the one it replaces, or the receipt key.
            let role = match kind {
                KeyKind::Policy => EndorsedRole::Policy,
                _ => EndorsedRole::Receipt,
            };
            let endorsement = KeyEndorsement::new(role, &new.verifying_key(), now);
            history
                .endorsements
                .push(signed_text(SignedEndorsement::sign(
                    endorsement,
                    &keys.policy,
                )?));
            let (slot, created_at, retired) = match kind {
                KeyKind::Policy => (
                    &mut keys.policy,
                    &mut history.policy_created_at,
                    &mut history.retired_policy_keys,
                ),
                _ => (
                    &mut keys.receipt,
                    &mut history.receipt_created_at,
                    &mut history.retired_receipt_keys,
                ),
            };
            let names = (b64(slot), b64(&new));
            *slot = new;
            retired.push(RetiredKey {
                public_key: names.0.clone(),
                created_at: *created_at,
                retired_at: at,
            });
            *created_at = at;
            names
        }
    })
}

fn b64(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().as_bytes())
}

fn signed_text(signed: SignedEndorsement) -> String {
    String::from_utf8_lossy(signed.as_bytes()).into_owned()
}

/// Stores the organization's layer again, unchanged: a new policy version, which makes a
/// running server reload its keys and every agent fetch a statement with them.
fn announce(
    store: &dyn MetadataStore,
    actor: &str,
    reason: &str,
    kind: KeyKind,
) -> Result<i64, KeysError> {
    let scope = crate::policy::Scope::Organization.key();
    let document = store
        .policy_layers()?
        .into_iter()
        .find(|row| row.scope == scope)
        .map_or_else(|| "{}".to_owned(), |row| row.document);
    let at = crate::clock::now().unix_timestamp();
    let why = format!("{} key rotated: {reason}", kind.as_str());
    Ok(store.put_policy_layer(&scope, &document, actor, Some(&why), at)?)
}

/// One key's age against its cryptoperiod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// What it is (`recording`, `policy`, `receipt`, `tls-server`, `tls-ca`, `device <id>`).
    pub name: String,
    /// Its public part (recipient, base64 key, or certificate expiry).
    pub public: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// How long it may serve, in days.
    pub cryptoperiod_days: i64,
    /// Past its period (or, for the server certificate, within 30 days of expiry).
    pub due: bool,
}

/// Every key's age, the deployment's keys first, then each active device's.
pub fn status(data: &Path, vault_key: &VaultKey) -> Result<Vec<KeyStatus>, KeysError> {
    let admin = Admin::open(data)?;
    let layout = admin.layout();
    let path = layout.private_keys();
    let keys = PrivateKeys::open(&std::fs::read(&path).map_err(io(&path))?, vault_key)?;
    ages(&keys, admin.config(), layout, admin.store())
}

/// The keys of an opened vault past their cryptoperiod (`serve` warns of them at start).
pub fn overdue(vault: &crate::Vault) -> Result<Vec<KeyStatus>, KeysError> {
    let all = ages(&vault.keys(), vault.config(), vault.layout(), vault.store())?;
    Ok(all.into_iter().filter(|k| k.due).collect())
}

fn ages(
    keys: &PrivateKeys,
    config: &crate::VaultConfig,
    layout: &Layout,
    store: &dyn MetadataStore,
) -> Result<Vec<KeyStatus>, KeysError> {
    let now = crate::clock::now().unix_timestamp();
    let deployed = time::OffsetDateTime::parse(
        &config.created_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map_or(0, |t| t.unix_timestamp());
    let known = |at: i64| if at > 0 { at } else { deployed };
    let entry = |name: &str, public: String, created_at: i64, days: i64| KeyStatus {
        name: name.to_owned(),
        public,
        created_at,
        cryptoperiod_days: days,
        due: now - created_at > days * 86_400,
    };
    let h = &keys.history;
    let mut out = vec![
        entry(
            "recording",
            keys.recording.to_public().to_string(),
            known(h.recording_created_at),
            RECORDING_CRYPTOPERIOD_DAYS,
        ),
        entry(
            "policy",
            b64(&keys.policy),
            known(h.policy_created_at),
            SIGNING_CRYPTOPERIOD_DAYS,
        ),
        entry(
            "receipt",
            b64(&keys.receipt),
            known(h.receipt_created_at),
            SIGNING_CRYPTOPERIOD_DAYS,
        ),
    ];
    out.push(tls_server(layout, now));
    out.push(entry(
        "tls-ca",
        "pinned by agents".into(),
        deployed,
        CA_CRYPTOPERIOD_DAYS,
    ));
    // A device's key dates from its enrollment or its last re-key (`vigil-agent rekey`).
    let mut rekeyed = std::collections::HashMap::new();
    for retired in store.retired_device_keys()? {
        rekeyed.insert(retired.device_id, retired.retired_at);
    }
    for device in store.devices()? {
        if device.revoked_at.is_none() {
            let since = rekeyed
                .get(&device.id)
                .copied()
                .unwrap_or(device.enrolled_at);
            out.push(entry(
                &format!("device {}", device.id),
                device.key_id.clone(),
                since,
                DEVICE_CRYPTOPERIOD_DAYS,
            ));
        }
    }
    Ok(out)
}

fn tls_server(layout: &Layout, now: i64) -> KeyStatus {
    let not_after = crate::tls::server_not_after(layout).map_or(0, |t| t.unix_timestamp());
    let days = crate::tls::SERVER_CERT_DAYS;
    KeyStatus {
        name: "tls-server".into(),
        public: format!(
            "certificate until {}",
            time::OffsetDateTime::from_unix_timestamp(not_after)
                .map(crate::clock::rfc3339)
                .unwrap_or_default()
        ),
        created_at: not_after - days * 86_400,
        cryptoperiod_days: days,
        due: not_after - now < crate::tls::RENEW_BEFORE_DAYS * 86_400,
    }
}
