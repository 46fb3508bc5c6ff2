//! Signed anchors of the audit log (issue 13 §8). The log's hash chain shows an edit, but not a
//! log rewritten whole, chain included, by someone who can write the database. So the server
//! signs the head of the log (its position and hash) with the receipt key, which lives only in
//! the encrypted key bundle, every `[audit] anchor_seconds`, and writes the signed anchor to
//! the blob store, beside the recordings rather than in the database. `audit verify` checks
//! every anchor: an anchored record whose hash changed, or that is gone, is a break, so an
//! intruder with database access alone is caught.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vigil_proto::{Document, KeyRole, Signed};
use vigil_vault_store::blobs::{BlobError, BlobStore};
use vigil_vault_store::metadata::{AuditRecord, MetadataStore, StoreError};

use crate::audit::ChainBreak;

/// The `kind` of an anchor statement.
pub const ANCHOR_KIND: &str = "vigil.audit-anchor";
/// The blob-store folder of the vault's own files (no session has the nil id).
pub const VAULT_FOLDER: Uuid = Uuid::nil();
const PREFIX: &str = "audit-anchor-";

/// What an anchor says: the log held this record, with this hash, at this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorStatement {
    /// Always [`ANCHOR_KIND`].
    pub kind: String,
    /// The head's position.
    pub seq: i64,
    /// The head's chain hash.
    pub sha256: String,
    /// When it was signed (Unix seconds).
    pub at: i64,
}

impl Document for AnchorStatement {
    const FIELD: &'static str = "anchor";
    const NAME: &'static str = "audit anchor";
    const SIGNER: KeyRole = KeyRole::VaultReceipt;
    const NEWLINE: bool = true;

    fn check(&self) -> Result<(), String> {
        if self.kind == ANCHOR_KIND {
            Ok(())
        } else {
            Err(format!("kind {:?}", self.kind))
        }
    }
}

/// An anchor with the vault's signature.
pub type SignedAnchor = Signed<AnchorStatement>;

/// Why anchoring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] vigil_proto::SignedError),
    /// The receipt key's public half (`keys/receipt.pub`) is unreadable.
    #[error("{0}")]
    PublicKey(String),
}

/// The receipt key's public half (base64 in `keys/receipt.pub`), then those rotation replaced
/// (`keys/receipt-retired.pub`, one a line, if any): what checks anchors without the key
/// bundle.
pub fn receipt_public_keys(
    layout: &vigil_vault_store::Layout,
) -> Result<Vec<ed25519_dalek::VerifyingKey>, AnchorError> {
    use base64::Engine as _;
    let mut keys = Vec::new();
    for (path, required) in [
        (layout.receipt_pub(), true),
        (layout.receipt_retired_pub(), false),
    ] {
        let bad = |why: String| AnchorError::PublicKey(format!("{}: {why}", path.display()));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(bad(e.to_string())),
        };
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(line)
                .map_err(|e| bad(e.to_string()))?;
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("not an Ed25519 public key".into()))?;
            keys.push(
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?,
            );
        }
    }
    Ok(keys)
}

fn file_name(seq: i64) -> String {
    format!("{PREFIX}{seq:012}.json")
}

/// Signs the log's head and writes it, unless the newest anchor already holds it; returns the
/// anchored position (`None`: the log is empty or already anchored there).
pub fn write_anchor(
    store: &dyn MetadataStore,
    blobs: &dyn BlobStore,
    key: &ed25519_dalek::SigningKey,
) -> Result<Option<i64>, AnchorError> {
    let Some(head) = last_record(store)? else {
        return Ok(None);
    };
    if blobs.exists(VAULT_FOLDER, &file_name(head.seq))? {
        return Ok(None);
    }
    let signed = SignedAnchor::sign(
        AnchorStatement {
            kind: ANCHOR_KIND.into(),
            seq: head.seq,
            sha256: head.sha256,
            at: crate::clock::now().unix_timestamp(),
        },
        key,
    )?;
    let staged = blobs.stage(VAULT_FOLDER, &[(file_name(head.seq), signed.as_bytes())])?;
    blobs.commit(staged)?;
    Ok(Some(head.seq))
}

/// The log's newest record, found without reading a long log whole.
fn last_record(store: &dyn MetadataStore) -> Result<Option<AuditRecord>, StoreError> {
    let last = crate::audit::last_seq_where(store, |_| true)?;
    if last == 0 {
        return Ok(None);
    }
    Ok(store.audit_records(last - 1, 1)?.into_iter().next())
}

/// Checks every anchor in the blob store against `records` (the whole log): each must carry
/// the receipt key's signature and name a record the log still holds with the same hash.
/// Returns the breaks and how many anchors held.
pub fn check_anchors(
    blobs: &dyn BlobStore,
    receipt_keys: &[ed25519_dalek::VerifyingKey],
    records: &[AuditRecord],
) -> Result<(Vec<ChainBreak>, usize), BlobError> {
    let mut breaks = Vec::new();
    let mut held = 0;
    let mut names: Vec<String> = blobs
        .list(VAULT_FOLDER)?
        .into_iter()
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    names.sort();
    for name in names {
        let bytes = blobs.get(VAULT_FOLDER, &name)?;
        let verified = SignedAnchor::verify(&bytes, None).and_then(|signed| {
            if receipt_keys.contains(&signed.signer) {
                Ok(signed)
            } else {
                // Refused as signed by another key than the (first) receipt key.
                SignedAnchor::verify(&bytes, receipt_keys.first())
            }
        });
        let anchor = match verified {
            Ok(signed) => signed.document,
            Err(e) => {
                breaks.push(ChainBreak {
                    seq: 0,
                    detail: format!("{name} is not an anchor the vault signed: {e}"),
                });
                continue;
            }
        };
        let check = crate::audit::Anchor {
            seq: anchor.seq,
            sha256: anchor.sha256,
        };
        match check.check(records) {
            Some(b) => breaks.push(ChainBreak {
                seq: b.seq,
                detail: format!("signed anchor {name}: {}", b.detail),
            }),
            None => held += 1,
        }
    }
    Ok((breaks, held))
}

/// Writes an anchor every `every` while the server runs (failures are logged and retried).
pub fn spawn_anchorer(
    vault: std::sync::Arc<crate::Vault>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let v = vault.clone();
            let done = tokio::task::spawn_blocking(move || {
                write_anchor(v.store(), v.blobs(), &v.keys().receipt)
            })
            .await;
            match done {
                Ok(Ok(Some(seq))) => tracing::debug!(seq, "audit log anchored"),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "audit anchor not written"),
                Err(e) => tracing::error!(error = %e, "audit anchor task failed"),
            }
        }
    })
}
