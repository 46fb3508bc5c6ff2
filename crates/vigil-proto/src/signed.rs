//! The signed envelope around a manifest: the manifest's exact JSON bytes, an Ed25519 signature
//! over those bytes, and the signer's public key. Verification works on the bytes as stored, so
//! no canonical re-serialization is needed and any edit breaks the signature.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::SegmentManifest;

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The id of a device key: the first 16 bytes of the SHA-256 of its public key, in hex.
pub fn device_key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// SHA-256 of a signed manifest's bytes: what the next manifest of the session chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDigest(pub String);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    manifest: &'a RawValue,
    signature: EnvelopeSignature,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeSignature {
    alg: String,
    public_key: String,
    sig: String,
}

/// A manifest with its signature, as stored next to the sealed blobs (`NNNNNN.manifest.json`).
#[derive(Debug, Clone)]
pub struct SignedManifest {
    /// The parsed manifest.
    pub manifest: SegmentManifest,
    /// The signer's public key.
    pub signer: VerifyingKey,
    bytes: Vec<u8>,
}

/// Why a manifest could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignManifestError {
    /// The manifest could not be serialized.
    #[error("manifest could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// What is wrong with a signed manifest; match on [`VerifyManifestError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyManifestErrorKind {
    /// Not a well-formed envelope or manifest.
    Malformed,
    /// The signature algorithm is not Ed25519.
    UnsupportedAlgorithm,
    /// The signature does not verify with the embedded key.
    BadSignature,
    /// The signer is not the expected device key.
    WrongSigner,
    /// The manifest format version is not supported.
    UnsupportedFormat,
}

/// A manifest that failed verification, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct VerifyManifestError {
    kind: VerifyManifestErrorKind,
    detail: String,
}

impl VerifyManifestError {
    fn new(kind: VerifyManifestErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
    /// The matchable kind of failure.
    pub fn kind(&self) -> VerifyManifestErrorKind {
        self.kind
    }
}

impl SignedManifest {
    /// Signs a manifest with the device key.
    pub fn sign(manifest: SegmentManifest, key: &SigningKey) -> Result<Self, SignManifestError> {
        let manifest_json = serde_json::to_string(&manifest)?;
        let sig = key.sign(manifest_json.as_bytes());
        let raw = RawValue::from_string(manifest_json)?;
        let envelope = Envelope {
            manifest: &raw,
            signature: EnvelopeSignature {
                alg: "ed25519".into(),
                public_key: B64.encode(key.verifying_key().as_bytes()),
                sig: B64.encode(sig.to_bytes()),
            },
        };
        let mut bytes = serde_json::to_vec(&envelope)?;
        bytes.push(b'\n');
        Ok(Self {
            manifest,
            signer: key.verifying_key(),
            bytes,
        })
    }

    /// Parses and verifies a stored envelope. With `expected_signer`, also checks who signed.
    pub fn verify(
        bytes: &[u8],
        expected_signer: Option<&VerifyingKey>,
    ) -> Result<Self, VerifyManifestError> {
        use VerifyManifestErrorKind as K;
        let envelope: Envelope<'_> = serde_json::from_slice(bytes)
            .map_err(|e| VerifyManifestError::new(K::Malformed, format!("envelope: {e}")))?;
        if envelope.signature.alg != "ed25519" {
            return Err(VerifyManifestError::new(
                K::UnsupportedAlgorithm,
                envelope.signature.alg,
            ));
        }
        let key_bytes: [u8; 32] = B64
            .decode(&envelope.signature.public_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| VerifyManifestError::new(K::Malformed, "public key is not 32 bytes"))?;
        let signer = VerifyingKey::from_bytes(&key_bytes).map_err(|_| {
            VerifyManifestError::new(K::Malformed, "public key is not a valid point")
        })?;
        if let Some(expected) = expected_signer {
            if expected != &signer {
                return Err(VerifyManifestError::new(
                    K::WrongSigner,
                    device_key_id(&signer),
                ));
            }
        }
        let sig_bytes: [u8; 64] = B64
            .decode(&envelope.signature.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| VerifyManifestError::new(K::Malformed, "signature is not 64 bytes"))?;
        let signed = envelope.manifest.get().as_bytes();
        signer
            .verify(signed, &Signature::from_bytes(&sig_bytes))
            .map_err(|_| VerifyManifestError::new(K::BadSignature, "signature does not match"))?;
        let manifest: SegmentManifest = serde_json::from_slice(signed)
            .map_err(|e| VerifyManifestError::new(K::Malformed, format!("manifest: {e}")))?;
        if manifest.format != crate::MANIFEST_FORMAT {
            return Err(VerifyManifestError::new(
                K::UnsupportedFormat,
                manifest.format.to_string(),
            ));
        }
        Ok(Self {
            manifest,
            signer,
            bytes: bytes.to_vec(),
        })
    }

    /// The envelope's bytes, exactly as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The digest the next manifest of the session chains to.
    pub fn digest(&self) -> ManifestDigest {
        ManifestDigest(sha256_hex(&self.bytes))
    }
}

#[cfg(test)]
mod tests;
