//! The agent's spool: sealed segments on disk, written crash-safely.
//!
//! Layout (stable: IT and compliance script against it):
//! ```text
//! <spool>/config/device.key                      device signing key (0600) until enrollment
//! <spool>/sessions/<session-id>/NNNNNN.screen.age   sealed H.264 screen (age)
//! <spool>/sessions/<session-id>/NNNNNN.voice.age    sealed Opus voice tracks (age)
//! <spool>/sessions/<session-id>/NNNNNN.manifest.json signed manifest
//! ```
//! Blobs are written before their manifest, each to a temporary name, fsynced, renamed, and the
//! folder fsynced: a manifest on disk means its segment is complete. Only sealed bytes are
//! ever written here.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;
use vigil_proto::{MediaKind, SignedManifest};

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
}

impl SpoolError {
    /// True when the disk is full: the agent stops capturing and raises the alarm.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => source.raw_os_error() == Some(28),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A spool folder.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
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
        Ok(Self {
            root: root.to_path_buf(),
        })
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
        format!("{sequence:06}.{}.age", kind.as_str())
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
        let sequence = manifest.manifest.sequence;
        let mut blobs = Vec::new();
        let mut bytes = 0;
        for (kind, data) in sealed_blobs {
            let path = dir.join(Self::blob_name(sequence, *kind));
            write_atomic(&path, data)?;
            bytes += data.len() as u64;
            blobs.push(path);
        }
        let path = dir.join(format!("{sequence:06}.manifest.json"));
        write_atomic(&path, manifest.as_bytes())?;
        bytes += manifest.as_bytes().len() as u64;
        sync_dir(&dir)?;
        Ok(WrittenSegment {
            manifest: path,
            blobs,
            bytes,
        })
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
