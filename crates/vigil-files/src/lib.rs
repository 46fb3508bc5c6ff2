//! Files only their owner may read: the device key, the control secret, the screen-cast restore
//! token, the vault's encrypted keys. One place decides how they are written, so that every
//! secret on disk is a 0600 file in a 0700 folder, written whole or not at all.
//!
//! On Unix the modes are set at creation (never a moment readable by others). Elsewhere the
//! files live under the user's profile or the deployment's folder, whose access lists the OS
//! already restricts; no mode is set there.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Who may read a file created by [`create_new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The owner only (0600).
    Private,
    /// Everyone may read, the owner writes (0644): public keys, certificates, settings.
    Public,
}

impl Access {
    #[cfg(unix)]
    fn mode(self) -> u32 {
        match self {
            Access::Private => 0o600,
            Access::Public => 0o644,
        }
    }
}

/// Creates `dir` (and its parents) and makes it the owner's alone (0700).
pub fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `contents` to `path` as a private file, replacing it atomically: a crash leaves the
/// old file or the new one, never half of one. The folder is made private first.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    replace(path, contents, Access::Private)
}

/// Replaces `path` with `contents` atomically, readable as `access` says (the folder as it is).
pub fn replace(path: &Path, contents: &[u8], access: Access) -> io::Result<()> {
    let tmp = partial(path);
    // A leftover from a crash could carry other permissions: modes apply only on creation.
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        let mut file = open_new(&tmp, access)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates a new file (never replacing one) with `contents`, readable as `access` says.
pub fn create_new(path: &Path, contents: &[u8], access: Access) -> io::Result<()> {
    let mut file = open_new(path, access)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Whether only the owner may read or write `path` (always true where modes do not apply).
pub fn is_private(path: &Path) -> io::Result<bool> {
    let meta = fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(meta.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(true)
    }
}

fn partial(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

fn open_new(path: &Path, access: Access) -> io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, access.mode());
    #[cfg(not(unix))]
    let _ = access;
    options.open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secrets_are_0600_in_a_0700_folder_and_replaced_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("run");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let secret = dir.join("control.secret");
        // A leftover partial file with loose permissions is not reused.
        fs::write(partial(&secret), b"old").unwrap();
        fs::set_permissions(partial(&secret), fs::Permissions::from_mode(0o666)).unwrap();
        write_private(&secret, b"one").unwrap();
        write_private(&secret, b"two").unwrap();
        assert_eq!(fs::read(&secret).unwrap(), b"two");
        assert_eq!(mode(&secret), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert!(!partial(&secret).exists());
        assert!(is_private(&secret).unwrap());
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(!is_private(&secret).unwrap());
    }

    #[test]
    fn new_files_never_replace_and_say_who_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let public = root.path().join("ca.pem");
        let private = root.path().join("private.age");
        create_new(&public, b"cert", Access::Public).unwrap();
        create_new(&private, b"keys", Access::Private).unwrap();
        assert_eq!(mode(&public), 0o644);
        assert_eq!(mode(&private), 0o600);
        let again = create_new(&private, b"other", Access::Private).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&private).unwrap(), b"keys");
    }
}
