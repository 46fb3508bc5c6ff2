//! Ingest receipts: the vault's signed statement that it stored a segment.
//!
//! A receipt is JSON shaped like the manifest envelope:
//! `{"receipt": {…}, "signature": {"alg": "ed25519", "public_key": b64, "sig": b64}}`, the
//! signature covering the exact bytes of the `receipt` value. The receipt names its own kind
//! (`vigil.segment-receipt`), so its signature cannot be mistaken for one over another message.
//! It is signed by the vault's receipt key, whose public half enrollment hands to the agent; the
//! agent deletes its local copy of a segment only after its receipt verifies.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    receipt: &'a RawValue,
    signature: EnvelopeSignature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    alg: String,
    public_key: String,
    sig: String,
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

impl SignedReceipt {
    /// Signs a receipt with the vault's receipt key.
    pub fn sign(receipt: &Receipt, key: &SigningKey) -> Self {
        let json = serde_json::to_string(receipt).expect("a receipt always serializes");
        let sig = key.sign(json.as_bytes());
        let raw = RawValue::from_string(json).expect("serde_json output is valid JSON");
        let envelope = Envelope {
            receipt: &raw,
            signature: EnvelopeSignature {
                alg: "ed25519".into(),
                public_key: B64.encode(key.verifying_key().as_bytes()),
                sig: B64.encode(sig.to_bytes()),
            },
        };
        let bytes = serde_json::to_vec(&envelope).expect("an envelope always serializes");
        Self {
            receipt: receipt.clone(),
            bytes,
        }
    }

    /// Verifies receipt bytes against the vault's receipt key.
    pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Self, ReceiptError> {
        let envelope: Envelope<'_> =
            serde_json::from_slice(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if envelope.signature.alg != "ed25519" {
            return Err(ReceiptError::Malformed(format!(
                "algorithm {}",
                envelope.signature.alg
            )));
        }
        if envelope.signature.public_key != B64.encode(key.as_bytes()) {
            return Err(ReceiptError::WrongSigner);
        }
        let sig: [u8; 64] = B64
            .decode(&envelope.signature.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ReceiptError::Malformed("signature is not 64 bytes".into()))?;
        let signed = envelope.receipt.get().as_bytes();
        key.verify(signed, &Signature::from_bytes(&sig))
            .map_err(|_| ReceiptError::BadSignature)?;
        let receipt: Receipt =
            serde_json::from_slice(signed).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
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
