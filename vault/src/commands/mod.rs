//! One function per command of `vigil-vault`, grouped as the help groups them. Each opens what
//! it needs, calls into the vault's library and prints; none holds a rule of its own.

use anyhow::Context;
use vigil_vault_core::secrets::VaultKey;
use vigil_vault_core::Vault;

pub mod deployment;
pub mod devices;
pub mod evidence;
pub mod lifecycle;
pub mod policy;
pub mod recordings;
pub mod users;

/// Opens the deployment with the vault key from `--key-file` or the environment.
pub fn open_vault(
    data: &std::path::Path,
    key_file: Option<&std::path::Path>,
) -> anyhow::Result<Vault> {
    let key = VaultKey::resolve(key_file)?;
    Vault::open(data, &key).with_context(|| format!("opening {}", data.display()))
}
