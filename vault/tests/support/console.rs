//! A served vault with one account per role and one enrolled device of team `north` that has
//! uploaded real sealed segments whose plaintext is Matroska (the EBML magic first).

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use reqwest::StatusCode;
use uuid::Uuid;
use vigil_proto::MaskedSpan;
use vigil_seal::{DeviceKey, Recipients, Sealer};

use crate::support::{manifest, pinned_client, run_ok, vault, Segment, Served};

/// The EBML magic every Matroska/WebM file starts with.
pub const MATROSKA_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// The plaintext of a test segment's blob: Matroska magic, then (segment 2: ~300 KB, more
/// than the 64 KiB chunks the vault streams) text ending in `<what> <seq>`.
pub fn large_media(what: &str, seq: u64) -> Vec<u8> {
    let mut b = MATROSKA_MAGIC.to_vec();
    if seq == 2 {
        for i in 0..30_000u32 {
            b.extend_from_slice(format!("{i:09}\n").as_bytes());
        }
    }
    b.extend_from_slice(format!(" {what} {seq}").as_bytes());
    b
}

/// Password of every test account but the admin.
pub const PASSWORD: &str = "correct horse battery staple";

/// The first admin's password once the one-time one is changed.
pub const ADMIN_PASSWORD: &str = "the admin's own password";

/// The role accounts: (name, role, teams).
pub const ACCOUNTS: [(&str, &str, &[&str]); 5] = [
    ("agt", "agent", &[]),
    ("sup", "supervisor", &["north"]),
    ("ann", "qa_analyst", &[]),
    ("cat", "compliance", &[]),
    ("mon", "monitor", &[]),
];

/// A logged-in console session.
#[derive(Debug, Clone)]
pub struct Login {
    pub cookie: String,
    pub csrf: String,
}

pub struct Console {
    pub _tmp: tempfile::TempDir,
    pub data: PathBuf,
    pub admin_password: String,
    pub served: Served,
    pub http: reqwest::Client,
    /// The session of the uploaded segments (sequence 1: masked, call `call-7`; 2: neither).
    pub session: Uuid,
}

pub fn add_user(data: &str, name: &str, role: &str, teams: &[&str], password: &str) {
    let mut args = vec!["user", "add", "--data", data, name, "--role", role];
    for t in teams {
        args.extend(["--team", t]);
    }
    args.push("--password-stdin");
    let mut child = vault(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Console {
    pub async fn start() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("vault");
        let d = data.to_str().unwrap().to_owned();
        let init = run_ok(&["init", "--data", &d, "--host", "127.0.0.1"]);
        crate::support::believe_old_manifests(&data);
        crate::support::add_to_vault_toml(&data, crate::support::NO_SECOND_FACTOR);
        let admin_password = init
            .lines()
            .find_map(|l| l.strip_prefix("one-time password: "))
            .unwrap()
            .to_owned();
        for (name, role, teams) in ACCOUNTS {
            add_user(&d, name, role, teams, PASSWORD);
        }
        let served = Served::start(&data, 1 << 20);
        let http = pinned_client(&std::fs::read(data.join("tls/ca.pem")).unwrap());

        // A device of team north uploads two segments of one session.
        let token = run_ok(&["token", "create", "--data", &d, "--team", "north"]);
        let key = DeviceKey::generate();
        let resp = http
            .post(format!("{}/v1/enroll", served.base))
            .json(&serde_json::json!({
                "token": token.trim(),
                "device_public_key": hex::encode(key.signing_key().verifying_key().as_bytes()),
                "hostname": "desk-7",
                "user": "agent7",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let enrolled: vigil_vault_core::enroll::EnrollResponse = resp.json().await.unwrap();
        let signing = key.signing_key().clone();
        let mut sealer = Sealer::new(Recipients::parse(&enrolled.recipients).unwrap(), key);
        let session = Uuid::new_v4();
        for seq in 1..=2u64 {
            let plain = |what: &str| large_media(what, seq);
            let screen = sealer.seal_blob(&plain("screen")).unwrap();
            let voice = sealer.seal_blob(&plain("voice")).unwrap();
            let mut m = manifest(
                &enrolled.device_id.to_string(),
                session,
                seq,
                &screen,
                &voice,
            );
            m.user = "agent7".into();
            if seq == 1 {
                m.call_id = Some("call-7".into());
                m.masked_spans = vec![MaskedSpan {
                    start_ns: 0,
                    end_ns: 1_000_000_000,
                    reason: "card number".into(),
                    rule_id: None,
                    trigger: "api".into(),
                    screen: "full".into(),
                    audio: true,
                    decided_ns: None,
                }];
            }
            let segment = Segment {
                manifest: sealer.sign(m).unwrap(),
                screen,
                voice,
            };
            let req = http.put(format!("{}/v1/segments/{session}/{seq}", served.base));
            let resp = crate::support::signed_upload(req, &signing, session, seq, segment.body())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
        }
        // The one-time password of `init` serves only to change it.
        crate::support::change_password(
            &http,
            &served.base,
            "admin",
            &admin_password,
            ADMIN_PASSWORD,
        )
        .await;
        Self {
            _tmp: tmp,
            data,
            admin_password: ADMIN_PASSWORD.to_owned(),
            served,
            http,
            session,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    pub fn data_str(&self) -> &str {
        self.data.to_str().unwrap()
    }

    /// Logs in; panics unless it succeeds.
    pub async fn login(&self, name: &str, password: &str) -> Login {
        let resp = self
            .http
            .post(self.url("/v1/login"))
            .json(&serde_json::json!({ "name": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "login {name}");
        let set_cookie = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let cookie = set_cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("__Host-vigil_session=")
            .unwrap()
            .to_owned();
        let body: serde_json::Value = resp.json().await.unwrap();
        Login {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A request with a session's cookie and CSRF token.
    pub fn with(&self, login: &Login, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("cookie", format!("__Host-vigil_session={}", login.cookie))
            .header("x-csrf-token", &login.csrf)
    }
}
