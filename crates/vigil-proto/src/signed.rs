//! One signed document for every statement the agent and the vault exchange: the document's
//! exact JSON bytes under its field name, an Ed25519 signature over those bytes, and the
//! signer's public key:
//!
//! `{"<field>": {…}, "signature": {"alg": "ed25519", "public_key": b64, "sig": b64}}`
//!
//! Verification works on the bytes as stored, so no canonical re-serialization is needed and any
//! edit breaks the signature. Each kind of document ([`Document`]) names its field, the role of
//! the key that signs it, and what its own `kind` and `format` must be, so that no signature over
//! one kind passes for another.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The id of a device key: the first 16 bytes of the SHA-256 of its public key, in hex.
pub fn device_key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// Whose key signs a kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The agent's device key (in the OS keystore; the vault learns it at enrollment).
    Device,
    /// The vault's receipt key (receipts, tombstones; agents learn it at enrollment).
    VaultReceipt,
    /// The vault's policy key (policy statements; agents learn it at enrollment).
    VaultPolicy,
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyRole::Device => "the device key",
            KeyRole::VaultReceipt => "the vault's receipt key",
            KeyRole::VaultPolicy => "the vault's policy key",
        })
    }
}

/// A kind of signed document.
pub trait Document: Serialize + DeserializeOwned {
    /// The envelope's field holding the document (`manifest`, `receipt`, …).
    const FIELD: &'static str;
    /// What people call it, in messages (the field name unless said otherwise).
    const NAME: &'static str = Self::FIELD;
    /// Whose key signs it.
    const SIGNER: KeyRole;
    /// Whether the stored envelope ends with a newline (files kept on disk).
    const NEWLINE: bool = false;
    /// Refuses a document of another kind or an unknown format (after its signature verified);
    /// the error says what was found.
    fn check(&self) -> Result<(), String>;
}

/// What is wrong with a signed document; match on [`SignedError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedErrorKind {
    /// Not a well-formed envelope or document.
    Malformed,
    /// The signature algorithm is not Ed25519.
    UnsupportedAlgorithm,
    /// The signature does not verify with the embedded key.
    BadSignature,
    /// The signer is not the expected key.
    WrongSigner,
    /// Another kind of document, or a format this version does not know.
    UnsupportedFormat,
    /// Addressed to another device.
    OtherDevice,
}

/// A document that failed verification or could not be signed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {}{}{detail}", describe(*.kind, *.signer), if .detail.is_empty() { "" } else { ": " })]
pub struct SignedError {
    kind: SignedErrorKind,
    field: &'static str,
    signer: KeyRole,
    detail: String,
}

fn describe(kind: SignedErrorKind, signer: KeyRole) -> String {
    match kind {
        SignedErrorKind::Malformed => "malformed".into(),
        SignedErrorKind::UnsupportedAlgorithm => "unsupported signature algorithm".into(),
        SignedErrorKind::BadSignature => "signature does not verify".into(),
        SignedErrorKind::WrongSigner => format!("signed by another key than {signer}"),
        SignedErrorKind::UnsupportedFormat => "unsupported kind or format".into(),
        SignedErrorKind::OtherDevice => "addressed to another device".into(),
    }
}

impl SignedError {
    fn new<D: Document>(kind: SignedErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            field: D::NAME,
            signer: D::SIGNER,
            detail: detail.into(),
        }
    }

    /// A document addressed to another device than the one checking it.
    pub(crate) fn wrong_signer<D: Document>(signer: &VerifyingKey) -> Self {
        Self::new::<D>(SignedErrorKind::WrongSigner, device_key_id(signer))
    }

    pub(crate) fn other_device<D: Document>(device: impl fmt::Display) -> Self {
        Self::new::<D>(SignedErrorKind::OtherDevice, device.to_string())
    }

    /// The matchable kind of failure.
    pub fn kind(&self) -> SignedErrorKind {
        self.kind
    }

    /// What was found wrong, without the kind (for messages that carry a code of their own).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    alg: String,
    public_key: String,
    sig: String,
}

/// A document with its signature, and the envelope's bytes exactly as signed and stored.
#[derive(Debug, Clone)]
pub struct Signed<D> {
    /// The parsed document.
    pub document: D,
    /// The key that signed it.
    pub signer: VerifyingKey,
    bytes: Vec<u8>,
}

impl<D: Document> Signed<D> {
    /// Signs a document.
    pub fn sign(document: D, key: &SigningKey) -> Result<Self, SignedError> {
        let serialize =
            |e: serde_json::Error| SignedError::new::<D>(SignedErrorKind::Malformed, e.to_string());
        let json = serde_json::to_string(&document).map_err(serialize)?;
        let signature = EnvelopeSignature {
            alg: "ed25519".into(),
            public_key: B64.encode(key.verifying_key().as_bytes()),
            sig: B64.encode(key.sign(json.as_bytes()).to_bytes()),
        };
        let signature = serde_json::to_string(&signature).map_err(serialize)?;
        let mut text = format!("{{\"{}\":{json},\"signature\":{signature}}}", D::FIELD);
        if D::NEWLINE {
            text.push('\n');
        }
        Ok(Self {
            document,
            signer: key.verifying_key(),
            bytes: text.into_bytes(),
        })
    }

    /// Parses and verifies an envelope. With `expected`, also checks who signed (the vault's
    /// statements are always checked against its key; a device's against the key enrolled).
    pub fn verify(bytes: &[u8], expected: Option<&VerifyingKey>) -> Result<Self, SignedError> {
        let (signer, signed) = open::<D>(bytes, expected)?;
        let document: D = serde_json::from_slice(signed)
            .map_err(|e| SignedError::new::<D>(SignedErrorKind::Malformed, e.to_string()))?;
        document
            .check()
            .map_err(|found| SignedError::new::<D>(SignedErrorKind::UnsupportedFormat, found))?;
        Ok(Self {
            document,
            signer,
            bytes: bytes.to_vec(),
        })
    }

    /// The envelope's bytes, exactly as signed and stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Parses an envelope of `D`, checks the signer against `expected` (when given) and the
/// signature; returns the signer and the document's exact bytes.
fn open<'a, D: Document>(
    bytes: &'a [u8],
    expected: Option<&VerifyingKey>,
) -> Result<(VerifyingKey, &'a [u8]), SignedError> {
    use SignedErrorKind as K;
    let malformed = |e: &dyn fmt::Display| SignedError::new::<D>(K::Malformed, e.to_string());
    let parts: BTreeMap<String, &'a RawValue> =
        serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    if parts.len() != 2 {
        return Err(malformed(&format!(
            "expected the fields `{}` and `signature`, found {:?}",
            D::FIELD,
            parts.keys().collect::<Vec<_>>()
        )));
    }
    let payload = *parts
        .get(D::FIELD)
        .ok_or_else(|| malformed(&format!("missing field `{}`", D::FIELD)))?;
    let signature: EnvelopeSignature = parts
        .get("signature")
        .ok_or_else(|| malformed(&"missing field `signature`"))
        .and_then(|raw| serde_json::from_str(raw.get()).map_err(|e| malformed(&e)))?;
    if signature.alg != "ed25519" {
        return Err(SignedError::new::<D>(
            K::UnsupportedAlgorithm,
            signature.alg,
        ));
    }
    let key: [u8; 32] = B64
        .decode(&signature.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(&"public key is not 32 bytes"))?;
    let signer = VerifyingKey::from_bytes(&key)
        .map_err(|_| malformed(&"public key is not a valid point"))?;
    if let Some(expected) = expected {
        if expected != &signer {
            return Err(SignedError::new::<D>(
                K::WrongSigner,
                device_key_id(&signer),
            ));
        }
    }
    let sig: [u8; 64] = B64
        .decode(&signature.sig)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| malformed(&"signature is not 64 bytes"))?;
    let signed = payload.get().as_bytes();
    signer
        .verify_strict(signed, &Signature::from_bytes(&sig))
        .map_err(|_| SignedError::new::<D>(K::BadSignature, ""))?;
    Ok((signer, signed))
}

/// Checks a document's own `kind` and `format` fields.
pub(crate) fn check_kind(
    kind: &str,
    expected_kind: &str,
    format: u32,
    expected_format: u32,
) -> Result<(), String> {
    if kind == expected_kind && format == expected_format {
        Ok(())
    } else {
        Err(format!("kind {kind} format {format}"))
    }
}

#[cfg(test)]
mod tests;
