//! A real `vigil-vault` for end-to-end tests: `init` in a temporary data folder, `serve` over
//! TLS on loopback (restartable on the same port, killable with SIGKILL), and its CLI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::{bail, Context as _, Result};

/// The vault key the tests use (`VIGIL_VAULT_KEY`).
pub const TEST_VAULT_KEY: &str = "end-to-end test vault key, long enough";

/// The `vigil-vault` binary of this build (`target/<profile>/vigil-vault`).
pub fn vault_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // Test binaries live in target/<profile>/deps, binaries one level up.
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("vigil-vault");
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("vigil-vault is not built next to {}: run `cargo build -p vigil-vault` (cargo test --workspace builds it)", exe.display())
}

/// A vault deployment and, while served, its server process.
pub struct TestVault {
    data: PathBuf,
    binary: PathBuf,
    server: Option<Child>,
    port: Option<u16>,
    /// The first admin's one-time password.
    pub admin_password: String,
}

impl TestVault {
    /// `vigil-vault init` in `data` (certificate for 127.0.0.1).
    pub fn init(data: &Path) -> Result<Self> {
        Self::init_with(data, &[])
    }

    /// [`TestVault::init`] with more arguments for `init` (`--escrow-recipient …`).
    pub fn init_with(data: &Path, more: &[&str]) -> Result<Self> {
        let binary = vault_binary()?;
        let mut vault = Self {
            data: data.to_path_buf(),
            binary,
            server: None,
            port: None,
            admin_password: String::new(),
        };
        let mut args = vec!["init", "--host", "127.0.0.1", "--host", "localhost"];
        args.extend_from_slice(more);
        let out = vault.run(&args, true)?;
        // The desktop tests log supervisors in with a password alone (the vault's own tests
        // cover the second factor).
        let config = data.join("vault.toml");
        let mut toml = std::fs::read_to_string(&config)?;
        toml.push_str("\n[accounts]\nmfa_required = false\n");
        std::fs::write(&config, toml)?;
        vault.admin_password = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("one-time password: "))
            .context("init printed no one-time password")?
            .to_owned();
        Ok(vault)
    }

    fn command(&self, args: &[&str], with_data: bool) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args);
        if with_data {
            cmd.arg("--data").arg(&self.data);
        }
        cmd.env("VIGIL_VAULT_KEY", TEST_VAULT_KEY)
            .env("RUST_LOG", "warn");
        cmd
    }

    /// Runs a CLI command with `--data`, failing on a non-zero exit.
    pub fn run(&self, args: &[&str], with_data: bool) -> Result<Output> {
        let out = self
            .command(args, with_data)
            .output()
            .with_context(|| format!("running vigil-vault {args:?}"))?;
        if !out.status.success() {
            bail!(
                "vigil-vault {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    /// Runs a CLI command and returns its output whatever the exit code.
    pub fn run_any(&self, args: &[&str], with_data: bool) -> Result<Output> {
        Ok(self.command(args, with_data).output()?)
    }

    /// Starts `serve` (on the port of the previous start, if any) and waits until it listens.
    pub fn serve(&mut self) -> Result<()> {
        if self.server.is_some() {
            bail!("already serving");
        }
        let listen = format!("127.0.0.1:{}", self.port.unwrap_or(0));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("serve.log"))?;
        let mut child = self
            .command(&["serve", "--listen", &listen], true)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting vigil-vault serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "vigil-vault serve did not start: {line:?} (see {}/serve.log)",
                self.data.display()
            );
        };
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .context("port in the listening line")?;
        self.port = Some(port);
        self.server = Some(child);
        Ok(())
    }

    /// The base URL (`https://127.0.0.1:PORT`) of the last start.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port.unwrap_or(0))
    }

    /// The port of the last start.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The CA certificate agents pin.
    pub fn ca_file(&self) -> PathBuf {
        self.data.join("tls/ca.pem")
    }

    /// The data folder.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// Kills the server with SIGKILL (a crash), and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    pub fn is_serving(&self) -> bool {
        self.server.is_some()
    }

    /// A new one-use enrollment token.
    pub fn token(&self) -> Result<String> {
        let out = self.run(&["token", "create"], true)?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The recording identity (AGE-SECRET-KEY-1…), exported with a reason (audited).
    pub fn export_identity(&self, reason: &str) -> Result<String> {
        let out = self.run(
            &["keys", "export-recording-identity", "--reason", reason],
            true,
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `vigil-vault gaps` output.
    pub fn gaps(&self) -> Result<String> {
        let out = self.run(&["gaps"], true)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TestVault {
    fn drop(&mut self) {
        self.kill();
    }
}
