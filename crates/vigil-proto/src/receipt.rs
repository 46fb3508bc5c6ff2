//! Ingest receipts: the vault's signed statement that it stored a segment.
//!
//! A receipt is JSON shaped like the manifest envelope:
//! `{"receipt": {…}, "signature": {"alg": "ed25519", "public_key": b64, "sig": b64}}`, the
//! signature covering the exact bytes of the `receipt` value. The receipt names its own kind
//! (`vigil.segment-receipt`), so its signature cannot be mistaken for one over another message.
//! It is signed by the vault's receipt key, whose public half enrollment hands to the agent; the
//! agent deletes its local copy of a segment only after its receipt verifies.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::envelope::{self, EnvelopeError};
use uuid::Uuid;

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

/// Why a receipt does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Not a receipt envelope.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// Signed by another key than the vault's receipt key.
    #[error("receipt signed by another key")]
    WrongSigner,
    /// The signature does not match.
    #[error("receipt signature does not verify")]
    BadSignature,
}

/// A receipt with its signature.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The parsed receipt.
    pub receipt: Receipt,
    bytes: Vec<u8>,
}

/// Opens a statement the vault signed with its receipt key (a receipt, a tombstone) under the
/// field name `field`, and parses it; the caller checks its kind.
pub(crate) fn open_signed_by_receipt_key<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    field: &str,
    key: &VerifyingKey,
) -> Result<T, ReceiptError> {
    let (_, signed) = envelope::open(bytes, field, Some(key)).map_err(|e| match e {
        EnvelopeError::Malformed(m) => ReceiptError::Malformed(m),
        EnvelopeError::WrongSigner => ReceiptError::WrongSigner,
        EnvelopeError::BadSignature => ReceiptError::BadSignature,
    })?;
    serde_json::from_slice(signed).map_err(|e| ReceiptError::Malformed(e.to_string()))
}

impl SignedReceipt {
    /// Signs a receipt with the vault's receipt key.
    pub fn sign(receipt: &Receipt, key: &SigningKey) -> Self {
        Self {
            receipt: receipt.clone(),
            bytes: envelope::seal("receipt", receipt, key),
        }
    }

    /// Verifies receipt bytes against the vault's receipt key.
    pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Self, ReceiptError> {
        let receipt: Receipt = open_signed_by_receipt_key(bytes, "receipt", key)?;
        if receipt.kind != RECEIPT_KIND || receipt.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Malformed(format!(
                "kind {} format {}",
                receipt.kind, receipt.format
            )));
        }
        Ok(Self {
            receipt,
            bytes: bytes.to_vec(),
        })
    }

    /// The receipt's bytes, exactly as signed and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let signed = SignedReceipt::sign(&receipt, &key);
        let back = SignedReceipt::verify(signed.as_bytes(), &key.verifying_key()).unwrap();
        assert_eq!(back.receipt, receipt);
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            SignedReceipt::verify(signed.as_bytes(), &other.verifying_key()).unwrap_err(),
            ReceiptError::WrongSigner
        );
        let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
        let forged = text.replace("\"sequence\":7", "\"sequence\":8");
        assert_eq!(
            SignedReceipt::verify(forged.as_bytes(), &key.verifying_key()).unwrap_err(),
            ReceiptError::BadSignature
        );
    }
}
