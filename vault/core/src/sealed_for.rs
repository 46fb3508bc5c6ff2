//! Whether a sealed blob was sealed for the vault, and for nobody else: its age header must hold
//! exactly as many X25519 stanzas as the vault has recipients, no stanza of another kind (age's
//! own random "grease" stanza aside), and open with the recording identity (which also checks
//! the header's MAC), or one retired by rotation less than
//! [`crate::secrets::RETIRED_RECORDING_GRACE_DAYS`] ago (agents learn the new recipient with
//! their next policy). A recorded person who seals to a key of their own, or only to it, is
//! refused at ingest instead of leaving recordings nobody can open, or that they can.

use std::io::BufRead;

/// Why a blob is not sealed for the vault alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealedForError {
    /// Not an age file (or a header that does not parse).
    #[error("not an age file: {0}")]
    NotAge(String),
    /// A stanza of a kind the vault never seals to (passphrase, SSH, plugin).
    #[error("a {0} recipient stanza: blobs are sealed to X25519 recipients only")]
    ForeignStanza(String),
    /// More or fewer X25519 recipients than the vault's.
    #[error("sealed to {found} X25519 recipients, the vault has {expected}")]
    RecipientCount {
        /// Stanzas found.
        found: usize,
        /// The vault's recipients.
        expected: usize,
    },
    /// The recording identity does not open it (or the header was altered).
    #[error("the vault's recording identity does not open it")]
    NotOpenable,
}

/// Checks `blob` (see the module documentation); reads only its header.
pub fn check_sealed_for(
    blob: &[u8],
    identities: &[&age::x25519::Identity],
    recipients: usize,
) -> Result<(), SealedForError> {
    let found = x25519_stanzas(blob)?;
    if found != recipients {
        return Err(SealedForError::RecipientCount {
            found,
            expected: recipients,
        });
    }
    let decryptor =
        age::Decryptor::new_buffered(blob).map_err(|e| SealedForError::NotAge(e.to_string()))?;
    decryptor
        .decrypt(identities.iter().map(|i| *i as &dyn age::Identity))
        .map(drop)
        .map_err(|_| SealedForError::NotOpenable)
}

/// The X25519 stanzas of an age v1 header, refusing any other kind but grease.
fn x25519_stanzas(blob: &[u8]) -> Result<usize, SealedForError> {
    let mut lines = blob.split(|b| *b == b'\n');
    if lines.next() != Some(b"age-encryption.org/v1".as_slice()) {
        return Err(SealedForError::NotAge("no age v1 header".into()));
    }
    let mut count = 0;
    for line in lines {
        if line.starts_with(b"---") {
            return Ok(count);
        }
        let Some(stanza) = line.strip_prefix(b"-> ") else {
            continue; // a stanza's body
        };
        let tag = stanza
            .split(|b| *b == b' ')
            .next()
            .unwrap_or_default()
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        if tag == "X25519" {
            count += 1;
        } else if !tag.ends_with("-grease") {
            return Err(SealedForError::ForeignStanza(tag));
        }
    }
    Err(SealedForError::NotAge("header without a MAC line".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn seal(recipients: &[&age::x25519::Identity]) -> Vec<u8> {
        let to: Vec<Box<dyn age::Recipient + Send>> = recipients
            .iter()
            .map(|i| Box::new(i.to_public()) as Box<dyn age::Recipient + Send>)
            .collect();
        let encryptor =
            age::Encryptor::with_recipients(to.iter().map(|r| r.as_ref() as &dyn age::Recipient))
                .unwrap();
        let mut out = Vec::new();
        let mut writer = encryptor.wrap_output(&mut out).unwrap();
        writer.write_all(b"media").unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn only_blobs_sealed_for_the_vault_alone_pass() {
        let vault = age::x25519::Identity::generate();
        let agent = age::x25519::Identity::generate();
        check_sealed_for(&seal(&[&vault]), &[&vault], 1).unwrap();
        assert_eq!(
            check_sealed_for(&seal(&[&vault, &agent]), &[&vault], 1),
            Err(SealedForError::RecipientCount {
                found: 2,
                expected: 1
            })
        );
        assert_eq!(
            check_sealed_for(&seal(&[&agent]), &[&vault], 1),
            Err(SealedForError::NotOpenable)
        );
        // With an escrow recipient the vault expects two, one of them its own.
        check_sealed_for(&seal(&[&agent, &vault]), &[&vault], 2).unwrap();
        let passphrase = {
            let encryptor = age::Encryptor::with_user_passphrase("pw".to_owned().into());
            let mut out = Vec::new();
            let mut w = encryptor.wrap_output(&mut out).unwrap();
            w.write_all(b"x").unwrap();
            w.finish().unwrap();
            out
        };
        assert_eq!(
            check_sealed_for(&passphrase, &[&vault], 1),
            Err(SealedForError::ForeignStanza("scrypt".into()))
        );
        assert!(matches!(
            check_sealed_for(b"not age", &[&vault], 1),
            Err(SealedForError::NotAge(_))
        ));
    }
}
