//! The signed JSON envelope every vault and agent statement uses (receipts, heartbeats, policy):
//! `{"<payload>": {…}, "signature": {"alg": "ed25519", "public_key": b64, "sig": b64}}`, the
//! signature covering the exact bytes of the payload value (no re-serialisation).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    alg: String,
    public_key: String,
    sig: String,
}

/// Why an envelope does not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvelopeError {
    /// Not an envelope of this payload.
    Malformed(String),
    /// Signed by another key than the expected one.
    WrongSigner,
    /// The signature does not match the payload.
    BadSignature,
}

/// Signs `payload` and wraps it under the field name `field`.
pub(crate) fn seal<T: Serialize>(field: &str, payload: &T, key: &SigningKey) -> Vec<u8> {
    let json = serde_json::to_string(payload).expect("a payload always serializes");
    let signature = EnvelopeSignature {
        alg: "ed25519".into(),
        public_key: B64.encode(key.verifying_key().as_bytes()),
        sig: B64.encode(key.sign(json.as_bytes()).to_bytes()),
    };
    let signature = serde_json::to_string(&signature).expect("a signature always serializes");
    format!("{{\"{field}\":{json},\"signature\":{signature}}}").into_bytes()
}

/// Parses an envelope of `field`, checks the signer against `expected` (when given) and the
/// signature; returns the signer and the payload's exact bytes.
pub(crate) fn open<'a>(
    bytes: &'a [u8],
    field: &str,
    expected: Option<&VerifyingKey>,
) -> Result<(VerifyingKey, &'a [u8]), EnvelopeError> {
    let malformed = |e: &dyn std::fmt::Display| EnvelopeError::Malformed(e.to_string());
    let parts: BTreeMap<String, &'a RawValue> =
        serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    if parts.len() != 2 {
        return Err(malformed(&format!(
            "expected the fields `{field}` and `signature`, found {:?}",
            parts.keys().collect::<Vec<_>>()
        )));
    }
    let payload = *parts
        .get(field)
        .ok_or_else(|| malformed(&format!("missing field `{field}`")))?;
    let signature: EnvelopeSignature = parts
        .get("signature")
        .ok_or_else(|| malformed(&"missing field `signature`"))
        .and_then(|raw| serde_json::from_str(raw.get()).map_err(|e| malformed(&e)))?;
    if signature.alg != "ed25519" {
        return Err(malformed(&format!("algorithm {}", signature.alg)));
    }
    if let Some(key) = expected {
        if signature.public_key != B64.encode(key.as_bytes()) {
            return Err(EnvelopeError::WrongSigner);
        }
    }
    let key: [u8; 32] = B64
        .decode(&signature.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(&"public key is not 32 bytes"))?;
    let signer = VerifyingKey::from_bytes(&key).map_err(|e| malformed(&e))?;
    let sig: [u8; 64] = B64
        .decode(&signature.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(&"signature is not 64 bytes"))?;
    let signed = payload.get().as_bytes();
    signer
        .verify_strict(signed, &Signature::from_bytes(&sig))
        .map_err(|_| EnvelopeError::BadSignature)?;
    Ok((signer, signed))
}
