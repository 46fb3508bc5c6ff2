//! The attacks of issue 13, each against a real vault over TLS: an enrolled device (the recorded
//! person holds its key) or a network client tries the path, and the vault refuses it with a
//! clear error, storing nothing.

#[allow(dead_code)]
#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod audit;
mod ingest;
mod keys;
mod policy;
mod transport;

use std::fs;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use support::{next_segment, pinned_client, run_ok, Served};
use uuid::Uuid;
use vigil_proto::api::{Backlog, Heartbeat, SessionProgress, SignedHeartbeat, HEARTBEAT_KIND};
use vigil_seal::{DeviceKey, Recipients, Sealer};

/// A served deployment, its admin password and a client that pins its CA.
struct Rig {
    _tmp: tempfile::TempDir,
    data: String,
    served: Served,
    http: reqwest::Client,
    admin_password: String,
}

impl Rig {
    fn start() -> Self {
        Self::start_with(support::NO_SECOND_FACTOR)
    }

    /// A vault with `toml` added to its `vault.toml`.
    fn start_with(toml: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("vault");
        let d = data.to_str().unwrap().to_owned();
        let init = run_ok(&["init", "--data", &d, "--host", "127.0.0.1"]);
        let mut config = fs::read_to_string(data.join("vault.toml")).unwrap();
        config.push_str(toml);
        fs::write(data.join("vault.toml"), config).unwrap();
        let admin_password = init
            .lines()
            .find_map(|l| l.strip_prefix("one-time password: "))
            .unwrap()
            .to_owned();
        let served = Served::start(&data, 1 << 20);
        let http = pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap());
        Self {
            _tmp: tmp,
            data: d,
            served,
            http,
            admin_password,
        }
    }

    /// The deployment opened through the library (the vault key in hand), beside the server.
    fn library(&self) -> vigil_vault_core::Vault {
        vigil_vault_core::Vault::open(
            std::path::Path::new(&self.data),
            &vigil_vault_core::secrets::VaultKey::new(support::VAULT_KEY).unwrap(),
        )
        .unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    /// Enrolls a device with `key`; its id and the recipients it must seal to.
    async fn enroll(&self, key: &SigningKey) -> vigil_vault_core::enroll::EnrollResponse {
        support::enroll_device(&self.http, &self.served.base, &self.data, key).await
    }

    /// Uploads a segment: the status and the JSON answer (an error's code and detail).
    async fn put_segment(
        &self,
        key: &SigningKey,
        session: Uuid,
        seq: u64,
        segment: &support::Segment,
    ) -> (StatusCode, serde_json::Value) {
        let req = self
            .http
            .put(self.url(&format!("/v1/segments/{session}/{seq}")));
        let resp = support::signed_upload(req, key, session, seq, segment.body())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or_default())
    }

    /// Status and error code of a POST.
    async fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let resp = self
            .http
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        (status, v["error"].as_str().unwrap_or("").to_owned())
    }
}

fn heartbeat(device: Uuid, session: Uuid, produced: u64, pending: Vec<u64>) -> Heartbeat {
    Heartbeat {
        kind: HEARTBEAT_KIND.into(),
        device_id: device,
        sent_at: time::OffsetDateTime::now_utc(),
        sessions: vec![SessionProgress {
            session_id: session,
            produced,
            pending,
            closed: false,
        }],
        backlog: Backlog::default(),
        agent: None,
    }
}

/// Files under `dir`, recursively.
fn walk(dir: &std::path::Path) -> usize {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path)
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
