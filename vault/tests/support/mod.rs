//! Helpers for the end-to-end test: the real binary, a TLS client that trusts only the vault's
//! CA, and real sealed, signed segments made with the agent's own crates.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use uuid::Uuid;
use vigil_proto::frame::SegmentBody;
use vigil_proto::{
    sha256_hex, BlobRef, EncoderSettings, MediaKind, SegmentManifest, SignedManifest, Timestamp,
    MANIFEST_FORMAT,
};
use vigil_seal::Sealer;

pub const VAULT_KEY: &str = "test vault key, long enough";

/// `vault.toml` text that turns the second factor off: tests about other things log in with a
/// password alone (attacks.rs tests the second factor itself).
pub const NO_SECOND_FACTOR: &str = "\n[accounts]\nmfa_required = false\n";

/// Appends `text` to the `vault.toml` of `data`.
pub fn add_to_vault_toml(data: &Path, text: &str) {
    let file = data.join("vault.toml");
    let mut toml = std::fs::read_to_string(&file).unwrap();
    toml.push_str(text);
    std::fs::write(file, toml).unwrap();
}

/// Makes the vault in `data` believe device clocks up to a century off: these fixtures date
/// their manifests from 1970 on, which a vault otherwise counts from their arrival
/// (`[retention] clock_tolerance_days`, tested in attacks.rs).
pub fn believe_old_manifests(data: &Path) {
    add_to_vault_toml(data, "\n[retention]\nclock_tolerance_days = 36500\n");
}

pub fn vault(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-vault"));
    cmd.args(args)
        .env("VIGIL_VAULT_KEY", VAULT_KEY)
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs a command and returns its stdout; panics with its stderr when it fails.
pub fn run_ok(args: &[&str]) -> String {
    let out: Output = vault(args).output().expect("vigil-vault runs");
    assert!(
        out.status.success(),
        "vigil-vault {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Changes `name`'s password from `current` (a one-time password, say) to `new` over Basic
/// (`POST /v1/password`, the one route a pending change allows).
pub async fn change_password(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    current: &str,
    new: &str,
) {
    let resp = http
        .post(format!("{base}/v1/password"))
        .basic_auth(name, Some(current))
        .json(&serde_json::json!({ "current": current, "new": new }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "password change");
}

/// A new account with a password of our choosing (`user add … --password-stdin`): no change
/// is due at its first login.
pub fn add_user_with_password(data: &str, name: &str, role: &[&str], password: &str) {
    let mut args = vec!["user", "add", "--data", data, name];
    args.extend_from_slice(role);
    args.push("--password-stdin");
    let mut add = vault(&args);
    add.stdin(std::process::Stdio::piped());
    let mut child = add.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), password.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "user add {name}");
}

/// An API token of a new account: `user add NAME ROLE_ARGS…`, then `user token create NAME`.
pub fn api_token(data: &str, name: &str, role: &[&str]) -> String {
    let mut args = vec!["user", "add", "--data", data, name];
    args.extend_from_slice(role);
    run_ok(&args);
    run_ok(&["user", "token", "create", "--data", data, name])
        .trim()
        .to_owned()
}

/// An API token of a new `monitor` account (the `metrics` permission only), as Prometheus
/// would hold it.
pub fn monitor_token(data: &str) -> String {
    run_ok(&[
        "user",
        "add",
        "--data",
        data,
        "prometheus",
        "--role",
        "monitor",
    ]);
    run_ok(&["user", "token", "create", "--data", data, "prometheus"])
        .trim()
        .to_owned()
}

/// A running `vigil-vault serve`, stopped (by its own PID) when dropped.
pub struct Served {
    child: Child,
    pub base: String,
}

impl Served {
    pub fn start(data: &Path, max_body: usize) -> Self {
        Self::start_with(data, max_body, &[])
    }

    /// `serve` with more flags (`--request-timeout 2`, say).
    pub fn start_with(data: &Path, max_body: usize, flags: &[&str]) -> Self {
        let max_body = max_body.to_string();
        let mut args = vec![
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--max-body-bytes",
            &max_body,
        ];
        args.extend_from_slice(flags);
        let mut child = vault(&args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, base }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client whose only trusted root is the CA in `ca_pem`.
pub fn pinned_client(ca_pem: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .build()
        .unwrap()
}

/// One segment as the agent would upload it.
pub struct Segment {
    pub manifest: SignedManifest,
    pub screen: Vec<u8>,
    pub voice: Vec<u8>,
}

impl Segment {
    pub fn body(&self) -> Vec<u8> {
        SegmentBody::encode(
            self.manifest.as_bytes(),
            &[
                (MediaKind::Screen, &self.screen),
                (MediaKind::Voice, &self.voice),
            ],
        )
    }
}

fn blob_ref(kind: MediaKind, seq: u64, sealed: &[u8]) -> BlobRef {
    BlobRef {
        kind,
        file: format!("{seq:06}.{}.age", kind.as_str()),
        size: sealed.len() as u64,
        sha256: sha256_hex(sealed),
        container: "matroska".into(),
        tracks: vec![],
    }
}

/// An unsigned manifest for segment `seq` with these sealed blobs.
pub fn manifest(
    device_id: &str,
    session: Uuid,
    seq: u64,
    screen: &[u8],
    voice: &[u8],
) -> SegmentManifest {
    let at = |s: u64| Timestamp {
        wall: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s as i64),
        mono_ns: s * 1_000_000_000,
    };
    SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: Uuid::new_v4(),
        device_id: device_id.into(),
        user: "agent1".into(),
        session_id: session,
        sequence: seq,
        call_id: None,
        start: at((seq - 1) * 10),
        end: at(seq * 10),
        blobs: vec![
            blob_ref(MediaKind::Screen, seq, screen),
            blob_ref(MediaKind::Voice, seq, voice),
        ],
        masked_spans: vec![],
        events: vec![],
        policy_version: 0,
        prev_manifest_sha256: None,
        encoder: EncoderSettings {
            video_codec: "libx264".into(),
            video_preset: "ultrafast".into(),
            video_crf: 30,
            video_max_fps: 5,
            video_size: (1920, 1080),
            audio_codec: "libopus".into(),
            audio_bitrate: 24_000,
            audio_sample_rate: 48_000,
        },
        agent_version: "test".into(),
        last_in_session: false,
    }
}

/// Enrolls the device of `key` with a new token of the deployment in `data`, over `http` to
/// the vault at `base` (as an agent's `enroll` does); panics unless it is enrolled.
pub async fn enroll_device(
    http: &reqwest::Client,
    base: &str,
    data: &str,
    key: &ed25519_dalek::SigningKey,
) -> vigil_vault_core::enroll::EnrollResponse {
    let token = run_ok(&["token", "create", "--data", data]);
    let resp = http
        .post(format!("{base}/v1/enroll"))
        .json(&serde_json::json!({
            "token": token.trim(),
            "device_public_key": hex::encode(key.verifying_key().as_bytes()),
            "hostname": "desk",
            "user": "agent1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK, "enrollment");
    resp.json().await.unwrap()
}

/// `req` with `body` and the device signature header an agent's uploader sends (signed by
/// `key` for `session`/`seq`, now): the vault checks it before reading the body.
pub fn signed_upload(
    req: reqwest::RequestBuilder,
    key: &ed25519_dalek::SigningKey,
    session: Uuid,
    seq: u64,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = vigil_proto::upload_auth::sign_upload(key, session, seq, now, &body);
    req.header(vigil_proto::upload_auth::UPLOAD_AUTH_HEADER, signature)
        .body(body)
}

/// The next segment of the sealer's session: blobs sealed to the vault, manifest chained and signed.
pub fn next_segment(sealer: &mut Sealer, device_id: &str, session: Uuid, seq: u64) -> Segment {
    let screen = sealer
        .seal_blob(format!("screen {seq}").as_bytes())
        .unwrap();
    let voice = sealer.seal_blob(format!("voice {seq}").as_bytes()).unwrap();
    let manifest = sealer
        .sign(manifest(device_id, session, seq, &screen, &voice))
        .unwrap();
    Segment {
        manifest,
        screen,
        voice,
    }
}
