//! Where a user's agent listens and the secret that opens it. Both live in a folder only that
//! user can enter (`$XDG_RUNTIME_DIR/vigil`, else `~/.config/vigil/run`): `control.port` holds
//! the loopback port, `control.secret` 32 random bytes in hex, mode 0600. Another user of the
//! same machine can reach the port but cannot read the secret.

use std::path::{Path, PathBuf};

/// Why the endpoint files could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// Neither `XDG_RUNTIME_DIR` nor `HOME` is set.
    #[error("no runtime or home folder to keep the control secret in")]
    NoFolder,
    /// The agent is not running (no endpoint files).
    #[error("no agent is running for this user (nothing in {0})")]
    NotRunning(PathBuf),
    /// Reading or writing the files failed.
    #[error("control endpoint files in {path}")]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The files are not what the agent writes.
    #[error("control endpoint files in {0} are corrupt")]
    Corrupt(PathBuf),
}

/// The port and secret of a user's agent.
#[derive(Clone)]
pub struct ControlEndpoint {
    /// Loopback port.
    pub port: u16,
    secret: String,
}

impl std::fmt::Debug for ControlEndpoint {
    // The secret never reaches logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlEndpoint")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EndpointError + '_ {
    move |source| EndpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl ControlEndpoint {
    /// The folder for this user's endpoint files.
    pub fn folder() -> Result<PathBuf, EndpointError> {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("vigil"));
        }
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .filter(|d| !d.is_empty())
            .ok_or(EndpointError::NoFolder)?;
        Ok(PathBuf::from(home).join(".config/vigil/run"))
    }

    /// A fresh secret for an agent listening on `port`, written to `folder`.
    pub fn publish(folder: &Path, port: u16) -> Result<Self, EndpointError> {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        let secret = hex::encode(bytes);
        vigil_files::private_dir(folder).map_err(io(folder))?;
        vigil_files::write_private(&folder.join("control.secret"), secret.as_bytes())
            .map_err(io(folder))?;
        vigil_files::write_private(&folder.join("control.port"), port.to_string().as_bytes())
            .map_err(io(folder))?;
        Ok(Self { port, secret })
    }

    /// The endpoint the user's running agent published.
    pub fn discover(folder: &Path) -> Result<Self, EndpointError> {
        let port_file = folder.join("control.port");
        if !port_file.exists() {
            return Err(EndpointError::NotRunning(folder.to_path_buf()));
        }
        let port = std::fs::read_to_string(&port_file).map_err(io(folder))?;
        let secret = std::fs::read_to_string(folder.join("control.secret")).map_err(io(folder))?;
        let port = port
            .trim()
            .parse()
            .map_err(|_| EndpointError::Corrupt(folder.to_path_buf()))?;
        let secret = secret.trim().to_string();
        if secret.len() != 64 {
            return Err(EndpointError::Corrupt(folder.to_path_buf()));
        }
        Ok(Self { port, secret })
    }

    /// Removes the files (the agent stopped).
    pub fn withdraw(folder: &Path) {
        let _ = std::fs::remove_file(folder.join("control.port"));
        let _ = std::fs::remove_file(folder.join("control.secret"));
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// Whether a presented `Authorization` header carries the secret (constant time).
    pub fn admits(&self, header: Option<&str>) -> bool {
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("")
            .as_bytes();
        let expected = self.secret.as_bytes();
        presented.len() == expected.len()
            && presented
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_published_secret_is_admitted_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("vigil");
        let published = ControlEndpoint::publish(&folder, 4242).unwrap();
        let found = ControlEndpoint::discover(&folder).unwrap();
        assert_eq!(found.port, 4242);
        assert!(found.admits(Some(&published.bearer())));
        assert!(!found.admits(None));
        assert!(!found.admits(Some("Bearer nope")));
        let wrong = format!("Bearer {}", "0".repeat(64));
        assert!(!found.admits(Some(&wrong)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&folder.join("control.secret")), 0o600);
            assert_eq!(mode(&folder), 0o700);
        }
        assert!(!format!("{found:?}").contains(&published.secret));
        ControlEndpoint::withdraw(&folder);
        assert!(matches!(
            ControlEndpoint::discover(&folder),
            Err(EndpointError::NotRunning(_))
        ));
    }
}
