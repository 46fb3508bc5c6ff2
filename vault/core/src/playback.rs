//! Playing and downloading recordings. Asking for a recording yields a short-lived link (60 s,
//! bound to the account, the segment, the media kind and inline-or-attachment), audited with the
//! stated reason *before* the link exists; opening the link decrypts the sealed blob with the
//! recording identity in memory ([`Vault::open_media`]). Nothing decrypted touches the disk.
//!
//! Links are stored as hashes of their secrets in the metadata store, so any instance sharing it
//! serves them.

use std::io::Read;
use std::time::Duration;

use uuid::Uuid;
use vigil_proto::MediaKind;
use vigil_vault_store::metadata::{MediaLinkRecord, MetadataStore, StoreError};

use crate::access::Principal;
use crate::audit;
use crate::credentials::{random_secret, secret_hash};
use crate::{OpenMediaError, Vault};

/// Audit action: a recording was played (target: `session/sequence/kind`).
pub const ACTION_PLAY: &str = "recording.play";
/// Audit action: a recording was downloaded.
pub const ACTION_DOWNLOAD: &str = "recording.download";

/// How long a media link works.
pub const LINK_LIFETIME: Duration = Duration::from_secs(60);

/// Inline (play) or attachment (download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Shown in the browser.
    Play,
    /// Saved as a file.
    Download,
}

impl Purpose {
    /// The `Content-Disposition` it asks for.
    pub fn disposition(self) -> &'static str {
        match self {
            Purpose::Play => "inline",
            Purpose::Download => "attachment",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Purpose::Play => ACTION_PLAY,
            Purpose::Download => ACTION_DOWNLOAD,
        }
    }
}

/// A media link: for whom, which medium of which segment, to play or to download.
#[derive(Debug, Clone)]
pub struct MediaLink {
    /// The account it was made for.
    pub user: String,
    /// The session.
    pub session: Uuid,
    /// The segment's sequence number.
    pub sequence: u64,
    /// Voice or screen.
    pub kind: MediaKind,
    /// Play or download.
    pub purpose: Purpose,
}

/// What was asked for: a medium of a segment, and why.
#[derive(Debug, Clone)]
pub struct MediaAsk {
    /// The session.
    pub session: Uuid,
    /// The segment's sequence number.
    pub sequence: u64,
    /// Voice or screen.
    pub kind: MediaKind,
    /// Play or download.
    pub purpose: Purpose,
    /// The reason stated (kept in the audit log).
    pub reason: String,
}

/// Audits the request, then makes a link and returns its secret. `None` when the segment or
/// its medium is not there, or is outside the caller's teams (indistinguishable, so a caller
/// learns nothing of other teams' recordings).
pub fn request_link(
    vault: &Vault,
    who: &Principal,
    ask: MediaAsk,
) -> Result<Option<String>, StoreError> {
    let MediaAsk {
        session,
        sequence,
        kind,
        purpose,
        reason,
    } = ask;
    let Some(entry) = vault
        .store()
        .recording(session, i64::try_from(sequence).unwrap_or(i64::MAX))?
    else {
        return Ok(None);
    };
    let file = vigil_proto::naming::blob_file(sequence, kind);
    if !who.sees_team(entry.team.as_deref())
        || !vault.blobs().exists(session, &file).unwrap_or(false)
    {
        return Ok(None);
    }
    audit::record(
        vault.store(),
        &who.actor(),
        purpose.action(),
        Some(format!("{session}/{sequence}/{}", kind.as_str())),
        Some(reason),
    )?;
    let link = MediaLink {
        user: who.name.clone(),
        session,
        sequence,
        kind,
        purpose,
    };
    create_link(vault.store(), &link).map(Some)
}

/// Why a link could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenLinkError {
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sealed blob could not be read or decrypted.
    #[error(transparent)]
    Media(#[from] OpenMediaError),
}

/// A link and a decrypting reader over its medium.
pub type OpenedLink = (MediaLink, Box<dyn Read + Send>);

/// The live link with this secret made for `user`, and a decrypting reader over its medium;
/// `None` when there is none (expired, another account's, or never made).
pub fn open_link(
    vault: &Vault,
    secret: &str,
    user: &str,
) -> Result<Option<OpenedLink>, OpenLinkError> {
    let Some(link) = find_link(vault.store(), secret)?.filter(|l| l.user == user) else {
        return Ok(None);
    };
    let reader = vault.open_media(link.session, link.sequence, link.kind)?;
    Ok(Some((link, reader)))
}

/// Stores a new link valid for [`LINK_LIFETIME`]; returns its secret (the store keeps only its
/// hash).
fn create_link(store: &dyn MetadataStore, link: &MediaLink) -> Result<String, StoreError> {
    let secret = random_secret(32);
    let now = crate::clock::now().unix_timestamp();
    store.insert_media_link(
        &MediaLinkRecord {
            link_sha256: secret_hash(&secret),
            user_name: link.user.clone(),
            session_id: link.session,
            sequence: i64::try_from(link.sequence).unwrap_or(i64::MAX),
            kind: link.kind.as_str().into(),
            disposition: link.purpose.disposition().into(),
            expires_at: now + LINK_LIFETIME.as_secs() as i64,
        },
        now,
    )?;
    Ok(secret)
}

/// The live link with this secret.
fn find_link(store: &dyn MetadataStore, secret: &str) -> Result<Option<MediaLink>, StoreError> {
    let now = crate::clock::now().unix_timestamp();
    let Some(r) = store.media_link(&secret_hash(secret), now)? else {
        return Ok(None);
    };
    let kind = match r.kind.as_str() {
        "voice" => MediaKind::Voice,
        "screen" => MediaKind::Screen,
        _ => return Ok(None),
    };
    let purpose = match r.disposition.as_str() {
        "inline" => Purpose::Play,
        "attachment" => Purpose::Download,
        _ => return Ok(None),
    };
    Ok(Some(MediaLink {
        user: r.user_name,
        session: r.session_id,
        sequence: u64::try_from(r.sequence).unwrap_or_default(),
        kind,
        purpose,
    }))
}
