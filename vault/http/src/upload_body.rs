//! A segment upload's body, streamed to a file in the data folder's `incoming/` as it arrives
//! and hashed on the way (issue 13 §4): a slow or large upload holds a file, not memory. The
//! bytes are the sealed segment (age ciphertext and a signed manifest), never plaintext media.
//! The file goes when the upload is done, accepted or not; a crash's leftovers go when the
//! server next starts ([`prepare_incoming`]).

use std::path::{Path, PathBuf};

use axum::body::Body;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

/// Why a body could not be received.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReceiveError {
    /// More than the limit.
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    /// The client's stream broke off or was malformed.
    #[error("the body could not be read: {0}")]
    Unreadable(String),
    /// The vault could not write `incoming/`.
    #[error("incoming/ could not be written: {0}")]
    Io(#[from] std::io::Error),
}

/// A body received in full: its file, SHA-256 (hex) and length.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) file: NamedTempFile,
    pub(crate) sha256_hex: String,
    pub(crate) len: usize,
}

/// Makes `incoming/` (0700) and empties it of a previous run's leftovers.
pub(crate) fn prepare_incoming(dir: &Path) -> std::io::Result<()> {
    vigil_files::private_dir(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Streams `body` into a new file in `dir`, refusing it past `max` bytes.
pub(crate) async fn receive(
    body: Body,
    dir: PathBuf,
    max: usize,
) -> Result<Received, ReceiveError> {
    let file = tokio::task::spawn_blocking(move || {
        tempfile::Builder::new().prefix("upload-").tempfile_in(dir)
    })
    .await
    .map_err(|e| std::io::Error::other(e.to_string()))??;
    let mut out = tokio::fs::File::from_std(file.as_file().try_clone()?);
    let mut hash = Sha256::new();
    let mut len = 0usize;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReceiveError::Unreadable(e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers
        };
        len += chunk.len();
        if len > max {
            return Err(ReceiveError::TooLarge(max));
        }
        hash.update(&chunk);
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    Ok(Received {
        file,
        sha256_hex: hex::encode(hash.finalize()),
        len,
    })
}
