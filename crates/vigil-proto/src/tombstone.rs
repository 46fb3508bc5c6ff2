//! Redaction tombstones: the vault's signed statement that it destroyed a segment's media.
//!
//! Range redaction (PCI DSS 12.10.7: card data found where it should not be) destroys the
//! sealed blobs of every segment overlapping a range and keeps the signed manifest. The
//! tombstone stands in for the destroyed blobs: it names each one's SHA-256 and size (so the
//! manifest still verifies against something), the range, the case, the reason, who and when.
//! Same envelope as receipts (`{"tombstone": {…}, "signature": {…}}`), signed by the vault's
//! receipt key, with its own `kind` so that neither can pass for the other.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signed::{check_kind, Document, KeyRole, Signed};

/// The `kind` of every tombstone.
pub const TOMBSTONE_KIND: &str = "vigil.segment-tombstone";
/// Tombstone layout version.
pub const TOMBSTONE_FORMAT: u32 = 1;

/// A destroyed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyedBlob {
    /// The blob's file name (`NNNNNN.voice.age`).
    pub file: String,
    /// `voice` or `screen`.
    pub kind: String,
    /// Ciphertext size, as the manifest lists it.
    pub size: u64,
    /// Ciphertext SHA-256, as the manifest lists it.
    pub sha256: String,
    /// `destroyed` now, or `already_deleted` (by retention) before the redaction.
    pub state: String,
}

/// What the vault states about a redacted segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tombstone {
    /// Always [`TOMBSTONE_KIND`].
    pub kind: String,
    /// Always [`TOMBSTONE_FORMAT`].
    pub format: u32,
    /// The segment.
    pub segment_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// Its sequence number.
    pub sequence: u64,
    /// SHA-256 of its signed manifest (kept), as its receipt names it.
    pub manifest_sha256: String,
    /// The blobs the manifest lists, and what became of each.
    pub blobs: Vec<DestroyedBlob>,
    /// The redacted range's start.
    #[serde(with = "time::serde::rfc3339")]
    pub range_from: time::OffsetDateTime,
    /// The redacted range's end (exclusive).
    #[serde(with = "time::serde::rfc3339")]
    pub range_to: time::OffsetDateTime,
    /// The case the redaction serves.
    pub case: String,
    /// Why.
    pub reason: String,
    /// Who ordered it.
    pub actor: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub redacted_at: time::OffsetDateTime,
}

/// A tombstone with the vault's signature.
pub type SignedTombstone = Signed<Tombstone>;

impl Document for Tombstone {
    const FIELD: &'static str = "tombstone";
    const SIGNER: KeyRole = KeyRole::VaultReceipt;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, TOMBSTONE_KIND, self.format, TOMBSTONE_FORMAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedErrorKind;
    use ed25519_dalek::SigningKey;

    #[test]
    fn tombstones_verify_with_the_key_and_are_not_receipts() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let t = Tombstone {
            kind: TOMBSTONE_KIND.into(),
            format: TOMBSTONE_FORMAT,
            segment_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            sequence: 3,
            manifest_sha256: "11".repeat(32),
            blobs: vec![DestroyedBlob {
                file: "000003.voice.age".into(),
                kind: "voice".into(),
                size: 10,
                sha256: "22".repeat(32),
                state: "destroyed".into(),
            }],
            range_from: time::OffsetDateTime::UNIX_EPOCH,
            range_to: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(60),
            case: "C-1".into(),
            reason: "card number spoken".into(),
            actor: "cli:test".into(),
            redacted_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let signed = SignedTombstone::sign(t.clone(), &key).unwrap();
        let back = SignedTombstone::verify(signed.as_bytes(), Some(&key.verifying_key())).unwrap();
        assert_eq!(back.document, t);
        let other = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(
            SignedTombstone::verify(signed.as_bytes(), Some(&other.verifying_key()))
                .unwrap_err()
                .kind(),
            SignedErrorKind::WrongSigner
        );
        let forged = String::from_utf8(signed.as_bytes().to_vec())
            .unwrap()
            .replace("\"sequence\":3", "\"sequence\":4");
        assert_eq!(
            SignedTombstone::verify(forged.as_bytes(), Some(&key.verifying_key()))
                .unwrap_err()
                .kind(),
            SignedErrorKind::BadSignature
        );
        assert!(crate::receipt::SignedReceipt::verify(
            signed.as_bytes(),
            Some(&key.verifying_key())
        )
        .is_err());
    }
}
