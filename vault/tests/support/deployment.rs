//! A vault deployment for the lifecycle tests: `init` and `serve` on the given backends (their
//! secrets in each command's environment), one enrolled device, and segments sealed and signed
//! as the agent does, uploaded over TLS.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use time::OffsetDateTime;
use uuid::Uuid;
use vigil_proto::frame::CONTENT_TYPE;
use vigil_proto::{SignedManifest, Timestamp};
use vigil_seal::{DeviceKey, Recipients, Sealer};
use vigil_vault_core::enroll::EnrollResponse;
use vigil_vault_core::secrets::VaultKey;
use vigil_vault_core::Vault;

use crate::backends::Backends;
use crate::support::{manifest, pinned_client, signed_upload, vault, Segment, VAULT_KEY};

pub const DAY: i64 = 86_400;

/// The server process, killed and reaped on drop.
pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running vault on some backends with one enrolled device.
pub struct Deployment {
    // Dropped in this order: the server before the storage servers it uses.
    pub served: Served,
    pub backends: Backends,
    pub _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub data: PathBuf,
    pub client: reqwest::Client,
    pub device_id: String,
    pub key: SigningKey,
    pub sealer: Sealer,
}

/// `vigil-vault` with the backends' secrets in its environment.
pub fn cli(backends: &Backends, args: &[&str]) -> Output {
    let mut cmd = vault(args);
    cmd.envs(backends.envs());
    cmd.output().unwrap()
}

pub fn cli_ok(backends: &Backends, args: &[&str]) -> String {
    let out = cli(backends, args);
    assert!(
        out.status.success(),
        "vigil-vault {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Deployment {
    pub async fn start(toml_extra: &str, backends: Backends) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let data = root.join("vault");
        let d = data.to_str().unwrap();
        let mut init = vec!["init", "--data", d];
        let extra = backends.init_args();
        init.extend(extra.iter().map(String::as_str));
        cli_ok(&backends, &init);
        // These tests record "200 days ago" to stand in for time passing: the vault believes
        // device clocks up to a century off (`[retention]` is always written here).
        let mut toml = fs::read_to_string(data.join("vault.toml")).unwrap();
        toml.push_str("\n[accounts]\nmfa_required = false\n");
        toml.push_str("\n[retention]\nclock_tolerance_days = 36500\n");
        toml.push_str(toml_extra);
        fs::write(data.join("vault.toml"), toml).unwrap();
        let mut child = vault(&["serve", "--data", d, "--listen", "127.0.0.1:0"])
            .envs(backends.envs())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let served = Served { child, base };
        let client = pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap());
        let token = cli_ok(&backends, &["token", "create", "--data", d]);
        let device = DeviceKey::generate();
        let key = device.signing_key().clone();
        let resp = client
            .post(format!("{}/v1/enroll", served.base))
            .json(&serde_json::json!({
                "token": token.trim(),
                "device_public_key": B64.encode(key.verifying_key().as_bytes()),
                "hostname": "desk-5",
                "user": "agent5",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let enrolled: EnrollResponse = resp.json().await.unwrap();
        let sealer = Sealer::new(Recipients::parse(&enrolled.recipients).unwrap(), device);
        Self {
            served,
            backends,
            _tmp: tmp,
            root,
            data,
            client,
            device_id: enrolled.device_id.to_string(),
            key,
            sealer,
        }
    }

    pub fn d(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// Seals and uploads `count` 10-second segments of a new session from `start`, the last
    /// one closing it.
    pub async fn record(&self, start: i64, count: u64) -> (Uuid, Vec<Segment>) {
        let session = Uuid::new_v4();
        let mut segments: Vec<Segment> = Vec::new();
        for seq in 1..=count {
            let tag = format!("{session} {seq}");
            let screen = self
                .sealer
                .seal_blob(format!("screen {tag}").as_bytes())
                .unwrap();
            let voice = self
                .sealer
                .seal_blob(format!("voice {tag}").as_bytes())
                .unwrap();
            let mut m = manifest(&self.device_id, session, seq, &screen, &voice);
            let at = |s: i64| Timestamp {
                wall: OffsetDateTime::from_unix_timestamp(s).unwrap(),
                mono_ns: (s - start) as u64 * 1_000_000_000,
            };
            m.start = at(start + (seq as i64 - 1) * 10);
            m.end = at(start + seq as i64 * 10);
            m.prev_manifest_sha256 = segments.last().map(|p| p.manifest.digest().0);
            m.last_in_session = seq == count;
            let seg = Segment {
                manifest: SignedManifest::sign(m, &self.key).unwrap(),
                screen,
                voice,
            };
            let req = self
                .client
                .put(format!("{}/v1/segments/{session}/{seq}", self.served.base))
                .header("content-type", CONTENT_TYPE);
            let resp = signed_upload(req, &self.key, session, seq, seg.body())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
            segments.push(seg);
        }
        (session, segments)
    }

    pub fn blob_dir(&self, session: Uuid) -> PathBuf {
        self.backends
            .blob_root(&self.data)
            .join(session.to_string())
    }

    pub fn run(&self, args: &[&str]) -> Output {
        cli(&self.backends, args)
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        cli_ok(&self.backends, args)
    }

    pub fn files(&self, session: Uuid) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.blob_dir(session))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn library(&self) -> Vault {
        Vault::open(&self.data, &VaultKey::new(VAULT_KEY).unwrap()).unwrap()
    }

    pub fn audit(&self) -> String {
        self.run_ok(&["audit", "--data", self.d(), "--verify"])
    }
}

pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

pub fn names(seq: u64, kinds: &[&str]) -> Vec<String> {
    kinds.iter().map(|k| format!("{seq:06}.{k}")).collect()
}

/// Exports one session and verifies it offline; returns (exit code, report).
pub fn export_and_verify(dep: &Deployment, session: Uuid, name: &str) -> (PathBuf, i32, String) {
    let out = dep.root.join(name);
    let printed = dep.run_ok(&[
        "export",
        "--data",
        dep.d(),
        "--out",
        out.to_str().unwrap(),
        "--session",
        &session.to_string(),
        "--reason",
        "retention test",
    ]);
    assert!(printed.contains("exported"), "{printed}");
    let verified = dep.run(&["verify", out.to_str().unwrap()]);
    (
        out,
        verified.status.code().unwrap(),
        String::from_utf8_lossy(&verified.stdout).into_owned(),
    )
}
