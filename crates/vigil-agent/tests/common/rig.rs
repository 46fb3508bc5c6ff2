//! An enrolled agent on the test desktop: a keyring, a served vault over TLS and the agent's
//! spool and configuration, with helpers to upload, export and read gap reports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use super::{agent, run_ok};
use vigil_e2e::{TestDesktop, TestVault};

/// A desktop with a keyring, a served vault and an enrolled agent.
pub struct Rig {
    pub desk: TestDesktop,
    pub vault: TestVault,
    pub spool: PathBuf,
    pub config: PathBuf,
}

pub fn rig(config: &str, enroll_url: Option<&str>) -> Rig {
    rig_in_team(config, enroll_url, None)
}

/// Like [`rig`], the device enrolled into `team` (its token names the team).
pub fn rig_in_team(config: &str, enroll_url: Option<&str>, team: Option<&str>) -> Rig {
    let rig = unenrolled(config);
    let url = enroll_url
        .map(str::to_owned)
        .unwrap_or_else(|| rig.vault.url());
    rig.enroll(&url, &rig.vault.ca_file(), team);
    rig
}

/// A desktop with a keyring, a served vault and the agent's configuration; not enrolled yet.
pub fn unenrolled(config: &str) -> Rig {
    unenrolled_with(config, &[])
}

/// [`unenrolled`], the vault initialized with `init_args` more.
pub fn unenrolled_with(config: &str, init_args: &[&str]) -> Rig {
    let mut desk = TestDesktop::start().unwrap();
    desk.start_keyring().unwrap();
    let mut vault = TestVault::init_with(&desk.dir().join("vault"), init_args).unwrap();
    vault.serve().unwrap();
    let spool = desk.dir().join("spool");
    let config_path = desk.dir().join("agent.toml");
    std::fs::write(
        &config_path,
        // The control API stays off unless the test's own configuration has a [control].
        if config.contains("[control]") {
            format!("[upload]\nheartbeat_seconds = 1\nmax_retry_seconds = 3\n{config}")
        } else {
            format!("[control]\nenabled = false\n[upload]\nheartbeat_seconds = 1\nmax_retry_seconds = 3\n{config}")
        },
    )
    .unwrap();
    Rig {
        desk,
        vault,
        spool,
        config: config_path,
    }
}

impl Rig {
    /// Enrolls the agent at `url`, pinning `ca`, into `team`.
    pub fn enroll(&self, url: &str, ca: &Path, team: Option<&str>) {
        let token = match team {
            Some(team) => {
                let out = self
                    .vault
                    .run(&["token", "create", "--team", team], true)
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            None => self.vault.token().unwrap(),
        };
        let out = run_ok(
            agent(&self.desk)
                .arg("--config")
                .arg(&self.config)
                .args(["enroll", "--vault", url, "--token", &token, "--ca"])
                .arg(ca)
                .arg("--spool")
                .arg(&self.spool),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Enrolled as device"), "{stdout}");
        assert!(stdout.contains("OS keystore"), "{stdout}");
    }

    pub fn agent(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = agent(&self.desk);
        cmd.arg("--config").arg(&self.config).args(args);
        cmd.arg("--spool").arg(&self.spool);
        cmd
    }

    pub fn play_caller_tone(&self) -> vigil_e2e::Player {
        let tone = self.desk.tone_wav("tone", 440, 200).unwrap();
        self.desk.play("caller", &tone).unwrap()
    }

    /// Runs `vigil-agent upload` until the backlog is delivered.
    pub fn upload_all(&self) -> String {
        let out = run_ok(&mut self.agent(&["upload", "--timeout", "120"]));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Exports everything and verifies the export offline; returns the export folder.
    pub fn export_and_verify(&self, name: &str) -> PathBuf {
        let out = self.desk.dir().join(name);
        self.vault
            .run(
                &[
                    "export",
                    "--out",
                    out.to_str().unwrap(),
                    "--reason",
                    "acceptance test",
                ],
                true,
            )
            .unwrap();
        let verify = self
            .vault
            .run_any(&["verify", out.to_str().unwrap()], false)
            .unwrap();
        assert!(
            verify.status.success(),
            "offline verify failed:\n{}\n{}",
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        out
    }

    /// Sessions and sequence numbers the vault stores, from its gap report.
    pub fn gap_lines(&self) -> Vec<String> {
        self.vault
            .gaps()
            .unwrap()
            .lines()
            .filter(|l| l.contains("stored="))
            .map(str::to_owned)
            .collect()
    }
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_with_suffix(&p, suffix));
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= in {line}"))
}

/// Waits for a child with a deadline; kills it if it overstays.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
