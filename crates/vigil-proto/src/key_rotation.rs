//! Rotating the vault's signing keys without re-enrolling agents (issue 13 §12).
//!
//! A [`KeyEndorsement`] is the vault's policy key vouching for a new key: the next policy key
//! (signed by the one it replaces) or the next receipt key (signed by the policy key in force).
//! Every policy statement carries all of the vault's endorsements, oldest first, so an agent
//! that trusts only the key it enrolled with (or the one IT pinned) can follow the chain to the
//! key that signed the statement, however many rotations it slept through; nothing about the
//! chain needs to be kept on the device. A statement whose signer no chain from the trusted key
//! reaches is refused as signed by another key. A device that has followed a rotation keeps the
//! newest key it followed and refuses chains that do not pass through it, so a retired policy
//! key cannot endorse a key of someone else's to a device that has moved on.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::policy::SignedPolicy;
use crate::signed::check_kind;
use crate::{Document, KeyRole, Signed, SignedError, SignedErrorKind};

/// `kind` of an endorsement.
pub const ENDORSEMENT_KIND: &str = "vigil.key-endorsement";
/// Its format.
pub const ENDORSEMENT_FORMAT: u32 = 1;

/// Which key an endorsement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndorsedRole {
    /// The next policy key, signed by the policy key it replaces.
    Policy,
    /// The next receipt key, signed by the policy key in force.
    Receipt,
}

/// One vault key vouching for the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEndorsement {
    /// Always [`ENDORSEMENT_KIND`].
    pub kind: String,
    /// Always [`ENDORSEMENT_FORMAT`].
    pub format: u32,
    /// Which key it names.
    pub role: EndorsedRole,
    /// The new key (Ed25519, base64).
    pub public_key: String,
    /// When the vault made it.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: time::OffsetDateTime,
}

impl Document for KeyEndorsement {
    const FIELD: &'static str = "endorsement";
    const SIGNER: KeyRole = KeyRole::VaultPolicy;

    fn check(&self) -> Result<(), String> {
        check_kind(
            &self.kind,
            ENDORSEMENT_KIND,
            self.format,
            ENDORSEMENT_FORMAT,
        )?;
        self.key().map(drop)
    }
}

impl KeyEndorsement {
    /// A new endorsement of `key` as the next `role` key.
    pub fn new(role: EndorsedRole, key: &VerifyingKey, issued_at: time::OffsetDateTime) -> Self {
        Self {
            kind: ENDORSEMENT_KIND.into(),
            format: ENDORSEMENT_FORMAT,
            role,
            public_key: B64.encode(key.as_bytes()),
            issued_at,
        }
    }

    /// The key it names.
    pub fn key(&self) -> Result<VerifyingKey, String> {
        B64.decode(&self.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| "the endorsed key is not an Ed25519 public key".to_owned())
    }
}

/// A signed endorsement.
pub type SignedEndorsement = Signed<KeyEndorsement>;

/// The keys a verified statement establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultKeys {
    /// The policy key that signed it (the trusted key, or one it endorsed in turn).
    pub policy: VerifyingKey,
    /// The newest receipt key endorsed along that chain, if any (else the enrollment's).
    pub receipt: Option<VerifyingKey>,
}

/// Verifies a policy statement for `device_id` against `trusted` (the key the device enrolled
/// with or IT pinned), following the statement's endorsements when another key signed it.
/// With `followed` (the newest key this device followed before), the chain must pass through
/// it and the signer be it or a later key.
pub fn verify_policy(
    bytes: &[u8],
    trusted: &VerifyingKey,
    followed: Option<&VerifyingKey>,
    device_id: Uuid,
) -> Result<(SignedPolicy, VaultKeys), SignedError> {
    // The signature is checked against the key it names; who that key is, is decided below.
    let policy = SignedPolicy::verify(bytes, None)?;
    let chain = policy_chain(&policy.document.endorsements, trusted);
    let signer_at = chain.iter().position(|k| *k == policy.signer);
    let floor_at = match followed {
        Some(f) => chain.iter().position(|k| k == f),
        None => Some(0),
    };
    let believed = matches!((signer_at, floor_at), (Some(s), Some(f)) if s >= f);
    if !believed {
        return Err(SignedError::wrong_signer::<crate::policy::PolicyStatement>(
            &policy.signer,
        ));
    }
    let policy = SignedPolicy::verify_for(bytes, &policy.signer, device_id)?;
    let receipt = newest_receipt_key(&policy.document.endorsements, &chain);
    let keys = VaultKeys {
        policy: policy.signer,
        receipt,
    };
    Ok((policy, keys))
}

/// The policy keys reachable from `trusted`: it, then each key endorsed by the last one.
fn policy_chain(endorsements: &[String], trusted: &VerifyingKey) -> Vec<VerifyingKey> {
    let mut chain = vec![*trusted];
    loop {
        let last = *chain.last().expect("never empty");
        let next = endorsements.iter().find_map(|e| {
            let e = SignedEndorsement::verify(e.as_bytes(), Some(&last)).ok()?;
            let key = e.document.key().ok()?;
            (e.document.role == EndorsedRole::Policy && !chain.contains(&key)).then_some(key)
        });
        match next {
            Some(key) => chain.push(key),
            None => return chain,
        }
    }
}

/// The newest receipt key endorsed by a key of `chain`.
fn newest_receipt_key(endorsements: &[String], chain: &[VerifyingKey]) -> Option<VerifyingKey> {
    endorsements
        .iter()
        .filter_map(|e| {
            let signed = SignedEndorsement::verify(e.as_bytes(), None).ok()?;
            (signed.document.role == EndorsedRole::Receipt && chain.contains(&signed.signer))
                .then_some(signed.document)
        })
        .max_by_key(|d| d.issued_at)
        .and_then(|d| d.key().ok())
}

/// Whether `error` says only that another key signed (the case rotation may explain).
pub fn is_wrong_signer(error: &SignedError) -> bool {
    error.kind() == SignedErrorKind::WrongSigner
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Policy, PolicyStatement, POLICY_KIND};
    use ed25519_dalek::SigningKey;

    fn endorse(by: &SigningKey, role: EndorsedRole, key: &SigningKey, at: i64) -> String {
        let doc = KeyEndorsement::new(
            role,
            &key.verifying_key(),
            time::OffsetDateTime::from_unix_timestamp(at).unwrap(),
        );
        String::from_utf8(
            SignedEndorsement::sign(doc, by)
                .unwrap()
                .as_bytes()
                .to_vec(),
        )
        .unwrap()
    }

    fn statement(by: &SigningKey, device: Uuid, endorsements: Vec<String>) -> Vec<u8> {
        let doc = PolicyStatement {
            kind: POLICY_KIND.into(),
            version: 3,
            device_id: device,
            issued_at: time::OffsetDateTime::UNIX_EPOCH,
            policy: Policy::default(),
            recipients: Vec::new(),
            endorsements,
        };
        SignedPolicy::sign(doc, by).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn a_statement_is_believed_through_a_chain_from_the_trusted_key_only() {
        let device = Uuid::new_v4();
        let [p1, p2, p3, r2, stranger] =
            [1u8, 2, 3, 4, 5].map(|b| SigningKey::from_bytes(&[b; 32]));
        let chain = vec![
            endorse(&p1, EndorsedRole::Policy, &p2, 10),
            endorse(&p2, EndorsedRole::Receipt, &r2, 11),
            endorse(&p2, EndorsedRole::Policy, &p3, 12),
        ];
        // The enrolled key signs: no rotation.
        let (_, keys) = verify_policy(
            &statement(&p1, device, vec![]),
            &p1.verifying_key(),
            None,
            device,
        )
        .unwrap();
        assert_eq!((keys.policy, keys.receipt), (p1.verifying_key(), None));
        // Two rotations later, through the chain.
        let (_, keys) = verify_policy(
            &statement(&p3, device, chain.clone()),
            &p1.verifying_key(),
            None,
            device,
        )
        .unwrap();
        assert_eq!(keys.policy, p3.verifying_key());
        assert_eq!(keys.receipt, Some(r2.verifying_key()));
        // A chain that does not start at the trusted key, or a stranger's statement with the
        // vault's chain attached: refused as another signer.
        for (signer, endorsements) in [(&p3, vec![chain[2].clone()]), (&stranger, chain.clone())] {
            let err = verify_policy(
                &statement(signer, device, endorsements),
                &p1.verifying_key(),
                None,
                device,
            )
            .unwrap_err();
            assert!(is_wrong_signer(&err), "{err}");
        }
        // A stranger cannot endorse its own receipt key into a genuine statement's chain.
        let mut forged = chain.clone();
        forged.push(endorse(&stranger, EndorsedRole::Receipt, &stranger, 99));
        let (_, keys) = verify_policy(
            &statement(&p3, device, forged),
            &p1.verifying_key(),
            None,
            device,
        )
        .unwrap();
        assert_eq!(keys.receipt, Some(r2.verifying_key()));
        // Someone holding the retired first key endorses a key of their own. A device that
        // followed the vault to its second key refuses it; the vault's own statements by the
        // second or third key still pass.
        let p1_to_stranger = vec![endorse(&p1, EndorsedRole::Policy, &stranger, 20)];
        let followed = Some(p2.verifying_key());
        let err = verify_policy(
            &statement(&stranger, device, p1_to_stranger),
            &p1.verifying_key(),
            followed.as_ref(),
            device,
        )
        .unwrap_err();
        assert!(is_wrong_signer(&err), "{err}");
        for (signer, endorsements) in [(&p2, chain[..1].to_vec()), (&p3, chain.clone())] {
            verify_policy(
                &statement(signer, device, endorsements),
                &p1.verifying_key(),
                followed.as_ref(),
                device,
            )
            .unwrap();
        }
        // Nor is the first key itself believed any more.
        let err = verify_policy(
            &statement(&p1, device, vec![]),
            &p1.verifying_key(),
            followed.as_ref(),
            device,
        )
        .unwrap_err();
        assert!(is_wrong_signer(&err), "{err}");
    }
}
