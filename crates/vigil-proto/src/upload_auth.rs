//! The device's signature on a segment upload's request line, sent in a header so the vault can
//! check who is uploading before it reads the body (up to 64 MiB): the device's public key, the
//! time, the body's SHA-256 and an Ed25519 signature by that key over
//! `vigil.segment-upload/1\n<session>\n<sequence>\n<unix seconds>\n<body sha256>`. The vault
//! checks the signature and the time from the header, reads the body, then checks its hash; the
//! signed manifest inside is verified as before.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use uuid::Uuid;

/// The header (`X-Vigil-Device-Signature: <device key> <unix seconds> <sha256> <signature>`,
/// key and signature in base64).
pub const UPLOAD_AUTH_HEADER: &str = "x-vigil-device-signature";
const CONTEXT: &str = "vigil.segment-upload/1";

/// What the header says, parsed but not verified yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadAuth {
    /// The uploading device's public key.
    pub device_key: VerifyingKey,
    /// When the device signed (Unix seconds).
    pub signed_at: i64,
    /// The body's SHA-256, hex.
    pub body_sha256: String,
    signature: [u8; 64],
}

/// Why an upload's signature header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadAuthError {
    /// Not `<device key> <unix seconds> <sha256> <signature>`.
    #[error(
        "malformed {UPLOAD_AUTH_HEADER} header: expected \"<device key> <unix seconds> <sha256> \
         <signature>\""
    )]
    Malformed,
    /// The signature does not verify with the device's key.
    #[error("the upload's signature does not verify with the device's key")]
    BadSignature,
}

fn message(session: Uuid, sequence: u64, signed_at: i64, body_sha256: &str) -> String {
    format!("{CONTEXT}\n{session}\n{sequence}\n{signed_at}\n{body_sha256}")
}

/// The header's value for uploading `body` as `sequence` of `session`, signed now (`signed_at`).
pub fn sign_upload(
    key: &SigningKey,
    session: Uuid,
    sequence: u64,
    signed_at: i64,
    body: &[u8],
) -> String {
    let sha = crate::sha256_hex(body);
    let signature = key.sign(message(session, sequence, signed_at, &sha).as_bytes());
    format!(
        "{} {signed_at} {sha} {}",
        B64.encode(key.verifying_key().as_bytes()),
        B64.encode(signature.to_bytes())
    )
}

impl UploadAuth {
    /// Parses the header's value.
    pub fn parse(value: &str) -> Result<Self, UploadAuthError> {
        let mut parts = value.split(' ');
        let mut next = || parts.next().ok_or(UploadAuthError::Malformed);
        let key: [u8; 32] = B64
            .decode(next()?)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or(UploadAuthError::Malformed)?;
        let device_key = VerifyingKey::from_bytes(&key).map_err(|_| UploadAuthError::Malformed)?;
        let signed_at = next()?.parse().map_err(|_| UploadAuthError::Malformed)?;
        let body_sha256 = next()?;
        let signature = B64
            .decode(next()?)
            .map_err(|_| UploadAuthError::Malformed)?;
        if parts.next().is_some()
            || body_sha256.len() != 64
            || !body_sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(UploadAuthError::Malformed);
        }
        Ok(Self {
            device_key,
            signed_at,
            body_sha256: body_sha256.to_owned(),
            signature: signature
                .try_into()
                .map_err(|_| UploadAuthError::Malformed)?,
        })
    }

    /// Checks the signature with the header's key, for this session and sequence (the caller
    /// checks that the key is an enrolled device's).
    pub fn verify(&self, session: Uuid, sequence: u64) -> Result<(), UploadAuthError> {
        let signed = message(session, sequence, self.signed_at, &self.body_sha256);
        self.device_key
            .verify_strict(signed.as_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| UploadAuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_header_verifies_for_its_upload_only() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let session = Uuid::from_u128(2);
        let header = sign_upload(&key, session, 7, 1_000, b"body");
        let auth = UploadAuth::parse(&header).unwrap();
        assert_eq!(
            (auth.device_key, auth.signed_at),
            (key.verifying_key(), 1_000)
        );
        assert_eq!(auth.body_sha256, crate::sha256_hex(b"body"));
        auth.verify(session, 7).unwrap();
        // Another position or session: refused.
        for (s, q) in [(session, 8), (Uuid::from_u128(3), 7)] {
            assert_eq!(auth.verify(s, q), Err(UploadAuthError::BadSignature));
        }
        // A changed time, or another device's key put in front: the signature fails.
        let shifted = header.replacen(" 1000 ", " 1001 ", 1);
        assert!(UploadAuth::parse(&shifted)
            .unwrap()
            .verify(session, 7)
            .is_err());
        let other = B64.encode(SigningKey::from_bytes(&[6; 32]).verifying_key().as_bytes());
        let (_, rest) = header.split_once(' ').unwrap();
        let swapped = format!("{other} {rest}");
        assert!(UploadAuth::parse(&swapped)
            .unwrap()
            .verify(session, 7)
            .is_err());
        for bad in [
            "",
            "x 1 2 3",
            "AAAA 1000 abc AAAA",
            &format!("{header} extra"),
        ] {
            assert_eq!(
                UploadAuth::parse(bad),
                Err(UploadAuthError::Malformed),
                "{bad}"
            );
        }
    }
}
