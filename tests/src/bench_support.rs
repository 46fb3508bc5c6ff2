//! What the benchmark binaries share: the release agent next to them, their first argument, and
//! a demo age identity for the recording.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The `vigil-agent` built next to the running benchmark binary.
pub fn agent_next_to_me() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let agent = exe.parent().context("exe dir")?.join("vigil-agent");
    if !agent.exists() {
        bail!("build the agent first: cargo build --release -p vigil-agent");
    }
    Ok(agent)
}

/// The first command-line argument as a number, or `default`.
pub fn first_arg_or<T: std::str::FromStr>(default: T) -> Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    Ok(std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default))
}

/// A fresh age identity written to `key`; returns its recipient (`age1…`).
pub fn age_identity(key: &Path) -> Result<String> {
    let out = Command::new("age-keygen").arg("-o").arg(key).output()?;
    if !out.status.success() {
        bail!("age-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stderr)
        .trim()
        .trim_start_matches("Public key: ")
        .to_string())
}
