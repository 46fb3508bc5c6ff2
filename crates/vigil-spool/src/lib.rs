//! The agent's spool: sealed segments on disk, written crash-safely.
//!
//! Layout (stable: IT and compliance script against it):
//! ```text
//! <spool>/config/device.key                      device signing key (0600) until enrollment
//! <spool>/sessions/<session-id>/NNNNNN.screen.age   sealed H.264 screen (age)
//! <spool>/sessions/<session-id>/NNNNNN.voice.age    sealed Opus voice tracks (age)
//! <spool>/sessions/<session-id>/NNNNNN.manifest.json signed manifest
//! <spool>/outbox.sqlite                          delivery state of every segment (WAL)
//! ```
//! Blobs are written before their manifest, each to a temporary name, fsynced, renamed, and the
//! folder fsynced: a manifest on disk means its segment is complete. Only sealed bytes are
//! ever written here. The [`outbox`] row follows the files; the [`uploader`] delivers them
//! through the [`client`] and deletes them once the vault's signed receipt verifies.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod outbox;
pub mod uploader;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use vigil_proto::{MediaKind, SignedManifest};

pub use outbox::{BacklogSummary, DeliveryState, Outbox, OutboxEntry, OutboxError};

/// Why the spool could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file system operation failed (full disk, permissions).
    #[error("spool {path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The outbox database failed.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A spooled manifest does not parse (the file was damaged on disk).
    #[error("spooled manifest {path} is damaged: {detail}")]
    Damaged {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl SpoolError {
    /// True when the disk is full: the agent stops capturing and raises the alarm.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => source.raw_os_error() == Some(28),
            SpoolError::Outbox(OutboxError::Sqlite(rusqlite::Error::SqliteFailure(e, _))) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A spool folder and its outbox.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    outbox: Outbox,
}

/// A spooled segment read back for upload: the exact bytes of its files.
#[derive(Debug, Clone)]
pub struct SpooledSegment {
    /// The signed manifest envelope.
    pub manifest: Vec<u8>,
    /// The sealed blobs the manifest lists, in its order.
    pub blobs: Vec<(MediaKind, Vec<u8>)>,
}

/// What [`Spool::reconcile`] repaired after a crash.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Complete segments found on disk without an outbox row (now queued).
    pub requeued: u64,
    /// Acknowledged segments whose files were still there (now deleted).
    pub cleaned: u64,
    /// Half-written temporary files removed.
    pub partials: u64,
}

/// Where a written segment's files are.
#[derive(Debug, Clone)]
pub struct WrittenSegment {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The sealed blobs.
    pub blobs: Vec<PathBuf>,
    /// Bytes written in all.
    pub bytes: u64,
}

impl Spool {
    /// Opens (creating if needed) a spool at `root`.
    pub fn open(root: &Path) -> Result<Self, SpoolError> {
        for dir in [
            root.to_path_buf(),
            root.join("config"),
            root.join("sessions"),
        ] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let outbox = Outbox::open(&root.join("outbox.sqlite"))?;
        Ok(Self {
            root: root.to_path_buf(),
            outbox,
        })
    }

    /// The outbox.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The file name of a manifest.
    pub fn manifest_name(sequence: u64) -> String {
        vigil_proto::naming::manifest_file(sequence)
    }

    /// The spool's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The configuration folder (device key until enrollment).
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// The folder of a session.
    pub fn session_dir(&self, session: Uuid) -> PathBuf {
        self.root.join("sessions").join(session.to_string())
    }

    /// The file name of a sealed blob.
    pub fn blob_name(sequence: u64, kind: MediaKind) -> String {
        vigil_proto::naming::blob_file(sequence, kind)
    }

    /// Writes a segment: its sealed blobs, then its manifest, each atomically and durably.
    pub fn write_segment(
        &self,
        session: Uuid,
        sealed_blobs: &[(MediaKind, &[u8])],
        manifest: &SignedManifest,
    ) -> Result<WrittenSegment, SpoolError> {
        let dir = self.session_dir(session);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let sequence = manifest.document.sequence;
        let mut blobs = Vec::new();
        let mut bytes = 0;
        for (kind, data) in sealed_blobs {
            let path = dir.join(Self::blob_name(sequence, *kind));
            write_atomic(&path, data)?;
            bytes += data.len() as u64;
            blobs.push(path);
        }
        let path = dir.join(Self::manifest_name(sequence));
        write_atomic(&path, manifest.as_bytes())?;
        bytes += manifest.as_bytes().len() as u64;
        sync_dir(&dir)?;
        self.outbox.record_sealed(
            session,
            sequence,
            bytes,
            manifest.document.last_in_session,
            outbox::now_ms(),
        )?;
        Ok(WrittenSegment {
            manifest: path,
            blobs,
            bytes,
        })
    }
}

impl Spool {
    /// Reads a spooled segment back: its manifest and the blobs it lists.
    pub fn read_segment(&self, session: Uuid, sequence: u64) -> Result<SpooledSegment, SpoolError> {
        let dir = self.session_dir(session);
        let path = dir.join(Self::manifest_name(sequence));
        let manifest = fs::read(&path).map_err(io(&path))?;
        let parsed = SignedManifest::verify(&manifest, None).map_err(|e| SpoolError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let mut blobs = Vec::new();
        for blob in &parsed.document.blobs {
            let blob_path = dir.join(Self::blob_name(sequence, blob.kind));
            blobs.push((blob.kind, fs::read(&blob_path).map_err(io(&blob_path))?));
        }
        Ok(SpooledSegment { manifest, blobs })
    }

    /// Deletes an acknowledged segment's files (and its session folder once empty).
    pub fn delete_segment(&self, session: Uuid, sequence: u64) -> Result<(), SpoolError> {
        let dir = self.session_dir(session);
        let prefix = vigil_proto::naming::segment_prefix(sequence);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&dir))?;
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        // Only succeeds when empty: other segments of the session may still wait.
        let _ = fs::remove_dir(&dir);
        Ok(())
    }

    /// Repairs what a crash can leave: complete segments without an outbox row are queued,
    /// acknowledged segments' leftover files deleted, half-written temporary files removed.
    pub fn reconcile(&self) -> Result<Reconciled, SpoolError> {
        let mut done = Reconciled::default();
        let sessions = self.root.join("sessions");
        for session_entry in fs::read_dir(&sessions).map_err(io(&sessions))? {
            let session_dir = session_entry.map_err(io(&sessions))?.path();
            let Some(session) = session_dir
                .file_name()
                .and_then(|n| Uuid::parse_str(&n.to_string_lossy()).ok())
            else {
                continue;
            };
            let mut names: Vec<String> = fs::read_dir(&session_dir)
                .map_err(io(&session_dir))?
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect();
            names.sort();
            for name in &names {
                if name.starts_with('.') && name.ends_with(".partial") {
                    let _ = fs::remove_file(session_dir.join(name));
                    done.partials += 1;
                    continue;
                }
                let Some(sequence) = name
                    .strip_suffix(".manifest.json")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                match self.outbox.entry(session, sequence)? {
                    Some(e) if e.state == DeliveryState::Acknowledged => {
                        self.delete_segment(session, sequence)?;
                        done.cleaned += 1;
                    }
                    Some(_) => {}
                    None => {
                        let path = session_dir.join(name);
                        let bytes_of = |n: &str| {
                            fs::metadata(session_dir.join(n))
                                .map(|m| m.len())
                                .unwrap_or(0)
                        };
                        let manifest = fs::read(&path).map_err(io(&path))?;
                        let parsed = SignedManifest::verify(&manifest, None).map_err(|e| {
                            SpoolError::Damaged {
                                path: path.clone(),
                                detail: e.to_string(),
                            }
                        })?;
                        let bytes = manifest.len() as u64
                            + parsed
                                .document
                                .blobs
                                .iter()
                                .map(|b| bytes_of(&Self::blob_name(sequence, b.kind)))
                                .sum::<u64>();
                        self.outbox.record_sealed(
                            session,
                            sequence,
                            bytes,
                            parsed.document.last_in_session,
                            outbox::now_ms(),
                        )?;
                        done.requeued += 1;
                    }
                }
            }
            let _ = fs::remove_dir(&session_dir);
        }
        if done != Reconciled::default() {
            tracing::info!(
                requeued = done.requeued,
                cleaned = done.cleaned,
                partials = done.partials,
                "spool reconciled after an unclean stop"
            );
        }
        Ok(done)
    }
}

/// Writes `data` to `path` through a temporary file, fsync and rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(data).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    // Directories can be opened and fsynced on Unix; elsewhere rename durability is the OS's.
    if cfg!(unix) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.age");
        write_atomic(&path, b"sealed").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"sealed");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_failed_write_reports_the_path_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("a.age");
        let err = write_atomic(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("missing-folder"));
        assert!(!err.is_disk_full());
    }
}
