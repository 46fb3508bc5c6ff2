//! Encryption of media to the vault's recipients and signing of manifests.

use std::io::{Read, Write};
use std::str::FromStr;

use vigil_proto::{ManifestDigest, SegmentManifest, SignedError, SignedManifest};

use crate::DeviceKey;

/// The `age` X25519 recipients that every blob is sealed to (the vault, and optionally an escrow).
#[derive(Clone)]
pub struct Recipients(Vec<age::x25519::Recipient>);

/// Why a list of recipients was refused; without valid recipients the agent must not record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecipientsError {
    /// No recipient was configured.
    #[error("no recording recipient is configured: Vigil does not record without one (use --recipient age1… or enroll with a vault)")]
    None,
    /// A recipient is not an `age1…` X25519 public key.
    #[error("recipient #{index} is not a valid age X25519 public key (expected age1…): {reason}")]
    Invalid {
        /// Position in the list, from 1.
        index: usize,
        /// What the parser said (never key material: recipients are public).
        reason: String,
    },
}

impl Recipients {
    /// Parses `age1…` public keys. Fails closed: an empty list or any invalid key is an error.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Self, RecipientsError> {
        if keys.is_empty() {
            return Err(RecipientsError::None);
        }
        let parsed = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                age::x25519::Recipient::from_str(k.as_ref().trim()).map_err(|reason| {
                    RecipientsError::Invalid {
                        index: i + 1,
                        reason: reason.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(parsed))
    }

    /// The recipients as `age1…` strings.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|r| r.to_string()).collect()
    }
}

/// Why a segment could not be sealed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The `age` encryptor failed.
    #[error("age encryption failed: {0}")]
    Encrypt(String),
    /// The manifest could not be signed.
    #[error(transparent)]
    Sign(#[from] SignedError),
}

/// Seals segment media and signs manifests for one recording session, keeping its hash chain.
pub struct Sealer {
    recipients: Recipients,
    key: DeviceKey,
    device_id: String,
    previous: Option<ManifestDigest>,
}

impl Sealer {
    /// A sealer for a new session (the first manifest has no predecessor).
    /// Before enrollment the device id is the key's id.
    pub fn new(recipients: Recipients, key: DeviceKey) -> Self {
        let device_id = key.id();
        Self::with_device_id(recipients, key, device_id)
    }

    /// A sealer for an enrolled device: manifests carry the id the vault assigned.
    pub fn with_device_id(recipients: Recipients, key: DeviceKey, device_id: String) -> Self {
        Self {
            recipients,
            key,
            device_id,
            previous: None,
        }
    }

    /// The device id manifests carry.
    pub fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// Encrypts plaintext media in memory to every recipient; returns the `age` file bytes.
    pub fn seal_blob(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let recipients = self.recipients.0.iter().map(|r| r as &dyn age::Recipient);
        let encryptor = age::Encryptor::with_recipients(recipients)
            .map_err(|e| SealError::Encrypt(e.to_string()))?;
        let mut out = Vec::with_capacity(plaintext.len() + 512);
        let mut writer = encryptor
            .wrap_output(&mut out)
            .map_err(|e| SealError::Encrypt(e.to_string()))?;
        writer
            .write_all(plaintext)
            .map_err(|e| SealError::Encrypt(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| SealError::Encrypt(e.to_string()))?;
        Ok(out)
    }

    /// The digest the next manifest must chain to.
    pub fn chain_head(&self) -> Option<&ManifestDigest> {
        self.previous.as_ref()
    }

    /// Chains the manifest to its predecessor, signs it, and advances the chain.
    pub fn sign(&mut self, mut manifest: SegmentManifest) -> Result<SignedManifest, SealError> {
        manifest.prev_manifest_sha256 = self.previous.as_ref().map(|d| d.0.clone());
        let signed = SignedManifest::sign(manifest, self.key.signing_key())?;
        self.previous = Some(signed.digest());
        Ok(signed)
    }
}

/// Why a sealed blob could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The identity file does not hold an age X25519 identity.
    #[error("not an age identity: {0}")]
    Identity(String),
    /// The blob is not an age file for this identity, or is corrupt.
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
}

/// Decrypts a sealed blob with an identity (`AGE-SECRET-KEY-1…` text, as `age-keygen` writes it).
/// The plaintext stays in memory.
pub fn open_blob(identity_text: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let identities = identity_text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .map(age::x25519::Identity::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| OpenError::Identity(e.to_string()))?;
    if identities.is_empty() {
        return Err(OpenError::Identity("no AGE-SECRET-KEY line found".into()));
    }
    let decryptor = age::Decryptor::new(sealed).map_err(|e| OpenError::Decrypt(e.to_string()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| OpenError::Decrypt(e.to_string()))?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Decrypt(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn sealed_blob_opens_with_the_identity_only() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let recipients = Recipients::parse(&[id.to_public().to_string()]).unwrap();
        let sealer = Sealer::new(recipients, DeviceKey::generate());
        let sealed = sealer.seal_blob(b"media bytes").unwrap();
        assert!(sealed.starts_with(b"age-encryption.org/v1"));
        assert!(!sealed.windows(11).any(|w| w == b"media bytes"));
        let opened = open_blob(id.to_string().expose_secret(), &sealed).unwrap();
        assert_eq!(opened, b"media bytes");
        assert!(open_blob(other.to_string().expose_secret(), &sealed).is_err());
    }

    #[test]
    fn recording_without_a_valid_recipient_is_refused() {
        assert!(matches!(
            Recipients::parse::<&str>(&[]),
            Err(RecipientsError::None)
        ));
        assert!(matches!(
            Recipients::parse(&["age1notakey"]),
            Err(RecipientsError::Invalid { index: 1, .. })
        ));
    }
}
