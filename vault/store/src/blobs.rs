//! The blob store: sealed blobs and signed manifests, byte for byte as the agent sent them.
//!
//! Writing is two-phase so that the metadata row is only ever written after its media is
//! durable: [`BlobStore::stage`] prepares every file of a segment out of sight, then
//! [`BlobStore::commit`] makes them visible and durable; ingest calls `commit` only after all
//! checks passed and writes the row only after `commit` returned. [`LocalBlobStore`] (the
//! default) stages files durably under temporary names and commits by rename and folder fsync,
//! so a crash leaves at worst staged files nothing refers to; `crate::s3_blobs::S3BlobStore`
//! holds the bytes and PUTs the final objects at commit. Reading back ([`BlobStore::get`],
//! [`BlobStore::exists`], [`BlobStore::list`]) sees committed files only.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// Why blobs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file system operation failed.
    #[error("blob store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file name that is not a plain, safe name.
    #[error("blob store: refused file name {0:?}")]
    BadName(String),
    /// The requested file is not stored.
    #[error("blob store: {session}/{name} not found")]
    NotFound {
        /// The session.
        session: Uuid,
        /// The file name.
        name: String,
    },
    /// The object store (S3) failed.
    #[error("blob store (S3): {op} {key}: {detail}")]
    Remote {
        /// What was being done.
        op: &'static str,
        /// The object key.
        key: String,
        /// The service's error, without credentials.
        detail: String,
    },
}

/// A segment's files, ready but not yet visible: locally each written durably under a fresh
/// staging id (`staging/<shard>/<id>.tmp`); for S3 held in memory until `commit` writes them.
#[derive(Debug)]
pub struct Staged {
    pub(crate) session: Uuid,
    /// (staging id, final file name)
    pub(crate) files: Vec<(Uuid, String)>,
    /// The bytes of `files`, for stores that write only at commit (else empty).
    pub(crate) held: Vec<Vec<u8>>,
}

/// Where sealed blobs and manifests are kept.
pub trait BlobStore: Send + Sync {
    /// Prepares the files of one segment of `session`, invisible to readers (locally: written
    /// durably under temporary names).
    fn stage(&self, session: Uuid, files: &[(String, &[u8])]) -> Result<Staged, BlobError>;
    /// Makes staged files visible under their names, atomically per file and durably: when it
    /// returns, a crash cannot lose them.
    fn commit(&self, staged: Staged) -> Result<(), BlobError>;
    /// Drops staged files (a refused segment): nothing of it stays visible.
    fn discard(&self, staged: Staged);

    /// The bytes of a committed file of `session`.
    fn get(&self, session: Uuid, name: &str) -> Result<Vec<u8>, BlobError>;
    /// Whether a committed file exists.
    fn exists(&self, session: Uuid, name: &str) -> Result<bool, BlobError>;
    /// The committed file names of `session`, sorted (empty for an unknown session).
    fn list(&self, session: Uuid) -> Result<Vec<String>, BlobError>;
    /// Deletes a committed file for good (retention, redaction), durably: when it returns,
    /// the file cannot come back. `Ok(false)` when it was not there (deleting twice is fine).
    fn delete(&self, session: Uuid, name: &str) -> Result<bool, BlobError>;

    /// Every session with committed files (the vault's own folder, the nil id, among them).
    fn sessions(&self) -> Result<Vec<Uuid>, BlobError>;
    /// The committed files of `session` with when each was written (Unix seconds), sorted.
    fn written(&self, session: Uuid) -> Result<Vec<(String, i64)>, BlobError>;
    /// Removes staged files written before `before` (Unix seconds): what a crash between
    /// staging and commit or discard left. Returns how many.
    fn sweep_staging(&self, before: i64) -> Result<usize, BlobError>;
}

/// A file's modification time in Unix seconds (0 when the platform has none).
fn mtime(meta: &fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Refuses names that could leave the session's folder or prefix.
pub(crate) fn check_name(name: &str) -> Result<(), BlobError> {
    if is_safe_name(name) {
        Ok(())
    } else {
        Err(BlobError::BadName(name.to_owned()))
    }
}

/// Folders of `staging/` (`0`…`f`).
const STAGING_SHARDS: usize = 16;

/// Blobs in a local folder: `<root>/<session>/<name>`, the layout of the agent's spool, so
/// `vigil_seal::verify_tree` checks a vault's folder as it checks a spool.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    staging: PathBuf,
}

/// Accepts only names made of `[A-Za-z0-9._-]`, not starting with a dot, at most 128 bytes.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BlobError + 'a {
    move |source| BlobError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn sync_dir(path: &Path) -> Result<(), BlobError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync folder", path))
}

impl LocalBlobStore {
    /// A store in `root`, staging in `staging` (same file system, so renames are atomic).
    pub fn new(root: impl Into<PathBuf>, staging: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let store = Self {
            root: root.into(),
            staging: staging.into(),
        };
        fs::create_dir_all(&store.root).map_err(io("create", &store.root))?;
        for shard in 0..STAGING_SHARDS {
            let dir = store.staging.join(format!("{shard:x}"));
            fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        }
        Ok(store)
    }

    /// The folder of a session.
    pub fn session_dir(&self, session: Uuid) -> PathBuf {
        self.root.join(session.to_string())
    }

    /// Staging is sharded by session: creating files in one folder takes that folder's lock,
    /// which parallel uploads would otherwise all queue on.
    fn staging_path(&self, session: Uuid, id: Uuid) -> PathBuf {
        let shard = session.as_u128() % STAGING_SHARDS as u128;
        self.staging
            .join(format!("{shard:x}"))
            .join(format!("{id}.tmp"))
    }
}

impl BlobStore for LocalBlobStore {
    fn stage(&self, session: Uuid, files: &[(String, &[u8])]) -> Result<Staged, BlobError> {
        let mut staged = Staged {
            session,
            files: Vec::with_capacity(files.len()),
            held: Vec::new(),
        };
        for (name, bytes) in files {
            if !is_safe_name(name) {
                self.discard(staged);
                return Err(BlobError::BadName(name.clone()));
            }
            let id = Uuid::new_v4();
            let tmp = self.staging_path(session, id);
            let written = fs::File::create(&tmp)
                .and_then(|mut f| {
                    f.write_all(bytes)?;
                    f.sync_all()
                })
                .map_err(io("write", &tmp));
            staged.files.push((id, name.clone()));
            if let Err(e) = written {
                self.discard(staged);
                return Err(e);
            }
        }
        Ok(staged)
    }

    fn commit(&self, staged: Staged) -> Result<(), BlobError> {
        let dir = self.session_dir(staged.session);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            sync_dir(&self.root)?;
        }
        for (id, name) in &staged.files {
            let target = dir.join(name);
            let staged_at = self.staging_path(staged.session, *id);
            fs::rename(staged_at, &target).map_err(io("rename", &target))?;
        }
        sync_dir(&dir)
    }

    fn discard(&self, staged: Staged) {
        for (id, _) in staged.files {
            let _ = fs::remove_file(self.staging_path(staged.session, id));
        }
    }

    fn get(&self, session: Uuid, name: &str) -> Result<Vec<u8>, BlobError> {
        check_name(name)?;
        let path = self.session_dir(session).join(name);
        fs::read(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => BlobError::NotFound {
                session,
                name: name.to_owned(),
            },
            _ => BlobError::Io {
                op: "read",
                path,
                source,
            },
        })
    }

    fn exists(&self, session: Uuid, name: &str) -> Result<bool, BlobError> {
        check_name(name)?;
        let path = self.session_dir(session).join(name);
        path.try_exists().map_err(io("stat", &path))
    }

    fn list(&self, session: Uuid) -> Result<Vec<String>, BlobError> {
        let dir = self.session_dir(session);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("list", &dir))?;
            if let Some(name) = entry.file_name().to_str().filter(|n| is_safe_name(n)) {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn delete(&self, session: Uuid, name: &str) -> Result<bool, BlobError> {
        check_name(name)?;
        let dir = self.session_dir(session);
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&dir)?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io("delete", &path)(e)),
        }
    }

    fn sessions(&self) -> Result<Vec<Uuid>, BlobError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        let mut sessions = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("list", &self.root))?;
            let name = entry.file_name();
            if let Some(id) = name.to_str().and_then(|n| Uuid::try_parse(n).ok()) {
                sessions.push(id);
            }
        }
        sessions.sort();
        Ok(sessions)
    }

    fn written(&self, session: Uuid) -> Result<Vec<(String, i64)>, BlobError> {
        let dir = self.session_dir(session);
        let mut out = Vec::new();
        for name in self.list(session)? {
            let path = dir.join(&name);
            match fs::metadata(&path) {
                Ok(meta) => out.push((name, mtime(&meta))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // deleted meanwhile
                Err(e) => return Err(io("stat", &path)(e)),
            }
        }
        Ok(out)
    }

    fn sweep_staging(&self, before: i64) -> Result<usize, BlobError> {
        let mut removed = 0;
        for shard in fs::read_dir(&self.staging).map_err(io("list", &self.staging))? {
            let shard = shard.map_err(io("list", &self.staging))?.path();
            let Ok(files) = fs::read_dir(&shard) else {
                continue;
            };
            for file in files.flatten() {
                let stale = file
                    .metadata()
                    .is_ok_and(|m| m.is_file() && mtime(&m) < before);
                if stale && fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_appear_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(dir.path().join("b"), dir.path().join("s")).unwrap();
        let session = Uuid::new_v4();
        let staged = store
            .stage(session, &[("000001.voice.age".into(), b"abc".as_slice())])
            .unwrap();
        let target = store.session_dir(session).join("000001.voice.age");
        assert!(!target.exists());
        store.commit(staged).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"abc");
        assert_eq!(store.get(session, "000001.voice.age").unwrap(), b"abc");
        assert!(store.exists(session, "000001.voice.age").unwrap());
        assert!(!store.exists(session, "000002.voice.age").unwrap());
        assert_eq!(store.list(session).unwrap(), vec!["000001.voice.age"]);
        assert!(store.list(Uuid::new_v4()).unwrap().is_empty());
        assert!(matches!(
            store.get(session, "000002.voice.age"),
            Err(BlobError::NotFound { .. })
        ));
        assert!(matches!(
            store.get(session, "../x"),
            Err(BlobError::BadName(_))
        ));
        let staged_files: usize = fs::read_dir(dir.path().join("s"))
            .unwrap()
            .map(|shard| fs::read_dir(shard.unwrap().path()).unwrap().count())
            .sum();
        assert_eq!(staged_files, 0);
        for bad in ["../x", ".hidden", "a/b", "", "a\\b"] {
            assert!(matches!(
                store.stage(session, &[(bad.into(), b"x".as_slice())]),
                Err(BlobError::BadName(_))
            ));
        }
    }
}
