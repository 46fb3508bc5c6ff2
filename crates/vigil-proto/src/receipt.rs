//! Ingest receipts: the vault's signed statement that it stored a segment.
//!
//! A receipt is a [`Signed`] document:
//! `{"receipt": {…}, "signature": {"alg": "ed25519", "public_key": b64, "sig": b64}}`, the
//! signature covering the exact bytes of the `receipt` value. The receipt names its own kind
//! (`vigil.segment-receipt`), so its signature cannot be mistaken for one over another message.
//! It is signed by the vault's receipt key, whose public half enrollment hands to the agent; the
//! agent deletes its local copy of a segment only after its receipt verifies.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::signed::{check_kind, Document, KeyRole, Signed};

/// The `kind` of every receipt.
pub const RECEIPT_KIND: &str = "vigil.segment-receipt";
/// Receipt layout version.
pub const RECEIPT_FORMAT: u32 = 1;

/// What the vault acknowledges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always [`RECEIPT_KIND`].
    pub kind: String,
    /// Always [`RECEIPT_FORMAT`].
    pub format: u32,
    /// The segment's id.
    pub segment_id: Uuid,
    /// Its session.
    pub session_id: Uuid,
    /// Its sequence number.
    pub sequence: u64,
    /// The enrolled device that signed it.
    pub device_id: Uuid,
    /// SHA-256 of the signed manifest envelope as stored, hex.
    pub manifest_sha256: String,
    /// When the vault first stored it.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: time::OffsetDateTime,
}

/// A receipt with the vault's signature.
pub type SignedReceipt = Signed<Receipt>;

impl Document for Receipt {
    const FIELD: &'static str = "receipt";
    const SIGNER: KeyRole = KeyRole::VaultReceipt;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, RECEIPT_KIND, self.format, RECEIPT_FORMAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedErrorKind;
    use ed25519_dalek::SigningKey;

    #[test]
    fn receipts_verify_with_the_receipt_key_only() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let receipt = Receipt {
            kind: RECEIPT_KIND.into(),
            format: RECEIPT_FORMAT,
            segment_id: Uuid::new_v4(),
            session_id: Uuid::new_v4(),
            sequence: 7,
            device_id: Uuid::new_v4(),
            manifest_sha256: "00".repeat(32),
            received_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let signed = SignedReceipt::sign(receipt.clone(), &key).unwrap();
        let back = SignedReceipt::verify(signed.as_bytes(), Some(&key.verifying_key())).unwrap();
        assert_eq!(back.document, receipt);
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            SignedReceipt::verify(signed.as_bytes(), Some(&other.verifying_key()))
                .unwrap_err()
                .kind(),
            SignedErrorKind::WrongSigner
        );
        let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
        let forged = text.replace("\"sequence\":7", "\"sequence\":8");
        assert_eq!(
            SignedReceipt::verify(forged.as_bytes(), Some(&key.verifying_key()))
                .unwrap_err()
                .kind(),
            SignedErrorKind::BadSignature
        );
    }
}
