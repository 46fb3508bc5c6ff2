//! Bad-input acceptance (issue 4): the real `vigil-vault serve` over TLS gets forged, foreign,
//! replayed, oversized, truncated, malformed and path-traversing uploads. Each must get a 4xx
//! with a JSON error naming the cause, store nothing (no metadata row, no file under blobs/ or
//! staging/), and be counted in `/metrics` under its cause.

#[allow(dead_code)]
mod support;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use support::{manifest, next_segment, pinned_client, run_ok, Served};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use vigil_proto::frame::{SegmentBody, CONTENT_TYPE};
use vigil_proto::{MediaKind, SignedManifest};
use vigil_seal::{DeviceKey, Recipients, Sealer};
use vigil_vault_core::admin::Admin;
use vigil_vault_store::metadata::SegmentFilter;

const MAX_BODY: usize = 32 * 1024;

struct Api {
    http: reqwest::Client,
    base: String,
    /// A monitoring account's API token, for `/metrics`.
    monitor: String,
}

/// A refusal as the client sees it.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    json: serde_json::Value,
}

impl Answer {
    /// Asserts a 4xx with a JSON error of this code and a non-empty detail.
    fn refused(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{code}: {:?}", self.json);
        assert_eq!(self.json["error"], code, "{:?}", self.json);
        let detail = self.json["detail"].as_str().unwrap_or("");
        assert!(!detail.is_empty(), "{code} has no detail: {:?}", self.json);
    }
}

impl Api {
    async fn enroll(&self, data: &str, key: &SigningKey) -> Uuid {
        let token = run_ok(&["token", "create", "--data", data]);
        let resp = self
            .http
            .post(format!("{}/v1/enroll", self.base))
            .json(&serde_json::json!({
                "token": token.trim(),
                "device_public_key": hex::encode(key.verifying_key().as_bytes()),
                "hostname": "desk",
                "user": "agent1",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let v: serde_json::Value = resp.json().await.unwrap();
        v["device_id"].as_str().unwrap().parse().unwrap()
    }

    async fn put_path(&self, path: &str, body: Vec<u8>) -> Answer {
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .header("content-type", CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or_default();
        Answer { status, json }
    }

    /// Uploads as the device of `key` (with its signature header, as agents do).
    async fn put(&self, key: &SigningKey, session: Uuid, seq: u64, body: Vec<u8>) -> Answer {
        let req = self
            .http
            .put(format!("{}/v1/segments/{session}/{seq}", self.base))
            .header("content-type", CONTENT_TYPE);
        let resp = support::signed_upload(req, key, session, seq, body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let json = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or_default();
        Answer { status, json }
    }
}

/// Sends a request line exactly as written (no client-side URL normalization), over TLS.
async fn raw_put(base: &str, ca_pem: &[u8], target: &str, body: &[u8]) -> Answer {
    raw_request(base, ca_pem, target, "", body, body.len()).await
}

/// Like [`raw_put`], announcing `content_length` bytes; when it is more than the body, the
/// client stops sending (closes its side) as a dying agent would.
async fn raw_request(
    base: &str,
    ca_pem: &[u8],
    target: &str,
    headers: &str,
    body: &[u8],
    content_length: usize,
) -> Answer {
    let addr = base.strip_prefix("https://").unwrap();
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
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {CONTENT_TYPE}\r\n{headers}\
         Content-Length: {content_length}\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    if content_length > body.len() {
        tls.shutdown().await.unwrap();
    }
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let code: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    Answer {
        status: StatusCode::from_u16(code).unwrap(),
        json: serde_json::from_str(body).unwrap_or_default(),
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                out.extend(files(&e.path()));
            } else {
                out.push(e.path().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_named_counted_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    run_ok(&["init", "--data", d]);
    let served = Served::start(&data, MAX_BODY);
    let ca = fs::read(data.join("tls/ca.pem")).unwrap();
    let api = Api {
        http: pinned_client(&ca),
        base: served.base.clone(),
        monitor: support::monitor_token(d),
    };

    let key_a = DeviceKey::generate();
    let sign_a = key_a.signing_key().clone();
    let id_a = api.enroll(d, &sign_a).await;
    let key_b = DeviceKey::generate();
    let sign_b = key_b.signing_key().clone();
    let id_b = api.enroll(d, &sign_b).await;
    let key_c = DeviceKey::generate();
    let sign_c = key_c.signing_key().clone();
    let id_c = api.enroll(d, &sign_c).await;
    let recipients_text = fs::read_to_string(data.join("keys/recording.pub")).unwrap();
    let recipients = Recipients::parse(&[recipients_text.trim()]).unwrap();
    let mut sealer_a = Sealer::new(recipients.clone(), key_a);
    let mut sealer_c = Sealer::new(recipients.clone(), key_c);
    let sealer_b = Sealer::new(recipients, key_b);
    let (session_a, session_b) = (Uuid::new_v4(), Uuid::new_v4());

    // The one legitimate upload.
    let a1 = next_segment(&mut sealer_a, &id_a.to_string(), session_a, 1);
    let a2 = next_segment(&mut sealer_a, &id_a.to_string(), session_a, 2);
    let stored = api.put(&sign_a, session_a, 1, a1.body()).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{:?}", stored.json);
    let blobs_before = files(&data.join("blobs"));
    assert_eq!(blobs_before.len(), 3);

    // Forged signature: the manifest edited after signing.
    let text = String::from_utf8(a2.manifest.as_bytes().to_vec()).unwrap();
    let forged = text.replace("\"user\":\"agent1\"", "\"user\":\"mallory\"");
    let body = SegmentBody::encode(
        forged.as_bytes(),
        &[
            (MediaKind::Screen, &a2.screen),
            (MediaKind::Voice, &a2.voice),
        ],
    );
    api.put(&sign_a, session_a, 2, body)
        .await
        .refused(StatusCode::FORBIDDEN, "bad_signature");

    // Unknown device: a well-formed segment signed by a key nobody enrolled.
    let stranger = SigningKey::from_bytes(&[42; 32]);
    let s = sealer_b.seal_blob(b"s").unwrap();
    let v = sealer_b.seal_blob(b"v").unwrap();
    let unknown = Uuid::new_v4();
    let m = SignedManifest::sign(manifest("stranger", unknown, 1, &s, &v), &stranger).unwrap();
    let body = SegmentBody::encode(
        m.as_bytes(),
        &[(MediaKind::Screen, &s), (MediaKind::Voice, &v)],
    );
    api.put(&stranger, unknown, 1, body)
        .await
        .refused(StatusCode::FORBIDDEN, "unknown_device");

    // Revoked device.
    run_ok(&["device", "revoke", "--data", d, &id_c.to_string()]);
    let session_c = Uuid::new_v4();
    let c1 = next_segment(&mut sealer_c, &id_c.to_string(), session_c, 1);
    api.put(&sign_c, session_c, 1, c1.body())
        .await
        .refused(StatusCode::FORBIDDEN, "revoked_device");

    // Replays by device B of A's signed segments. Into B's own session: the signed manifest
    // names A's session, so the path and the manifest disagree.
    api.put(&sign_b, session_b, 1, a1.body())
        .await
        .refused(StatusCode::BAD_REQUEST, "manifest_mismatch");
    // Into A's session at another position.
    api.put(&sign_b, session_a, 3, a2.body())
        .await
        .refused(StatusCode::BAD_REQUEST, "manifest_mismatch");
    // A's manifest re-signed by B (still naming A's device and session).
    let resigned = SignedManifest::sign(a2.manifest.document.clone(), &sign_b).unwrap();
    let body = SegmentBody::encode(
        resigned.as_bytes(),
        &[
            (MediaKind::Screen, &a2.screen),
            (MediaKind::Voice, &a2.voice),
        ],
    );
    api.put(&sign_b, session_a, 2, body)
        .await
        .refused(StatusCode::BAD_REQUEST, "manifest_mismatch");
    // Re-signed by B under B's own id, into A's session: the session is A's.
    let mut as_b = a2.manifest.document.clone();
    as_b.device_id = id_b.to_string();
    let as_b = SignedManifest::sign(as_b, &sign_b).unwrap();
    let body = SegmentBody::encode(
        as_b.as_bytes(),
        &[
            (MediaKind::Screen, &a2.screen),
            (MediaKind::Voice, &a2.voice),
        ],
    );
    api.put(&sign_b, session_a, 2, body)
        .await
        .refused(StatusCode::FORBIDDEN, "wrong_device");
    // Replayed at its own position, it is the same segment: the first receipt, nothing new.
    let replay = api.put(&sign_a, session_a, 1, a1.body()).await;
    assert_eq!(replay.status, StatusCode::OK, "{:?}", replay.json);

    // Oversized (over --max-body-bytes), truncated, malformed manifest JSON.
    let mut big = a2.body();
    big.resize(MAX_BODY + 1, 0);
    api.put(&sign_a, session_a, 2, big)
        .await
        .refused(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let mut cut = a2.body();
    cut.truncate(cut.len() - 7);
    api.put(&sign_a, session_a, 2, cut)
        .await
        .refused(StatusCode::BAD_REQUEST, "bad_body");
    let mut text = String::from_utf8(a2.manifest.as_bytes().to_vec()).unwrap();
    text.truncate(text.len() / 2);
    let body = SegmentBody::encode(text.as_bytes(), &[(MediaKind::Voice, &a2.voice)]);
    api.put(&sign_a, session_a, 2, body)
        .await
        .refused(StatusCode::BAD_REQUEST, "malformed_manifest");

    // A connection that dies mid-body (fewer bytes than announced).
    let body = a2.body();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = vigil_proto::upload_auth::sign_upload(&sign_a, session_a, 2, now, &body);
    raw_request(
        &served.base,
        &ca,
        &format!("/v1/segments/{session_a}/2"),
        &format!("x-vigil-device-signature: {signature}\r\n"),
        &body[..body.len() / 2],
        body.len(),
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "body_unreadable");

    // Path traversal and malformed ids, through the client and as raw request lines.
    let a = session_a.to_string();
    for path in [
        "/v1/segments/..%2F..%2Fetc/1".to_owned(),
        format!("/v1/segments/{a}/..%2F..%2Fetc"),
        "/v1/segments/not-a-uuid/1".to_owned(),
        format!("/v1/segments/{}/1", a.replace('-', "")),
        format!("/v1/segments/{a}/0"),
        format!("/v1/segments/{a}/-1"),
        format!("/v1/segments/{a}/99999999999999999999"),
        format!("/v1/segments/{a}/2.0"),
    ] {
        api.put_path(&path, a2.body())
            .await
            .refused(StatusCode::BAD_REQUEST, "bad_id");
    }
    let ca_ref = &ca;
    for target in [
        "/v1/segments/%2e%2e/1".to_owned(),
        format!("/v1/segments/{a}/%2e%2e"),
        "/v1/segments/../../etc/passwd".to_owned(),
        "/v1/segments/%2e%2e/%2e%2e/etc/1".to_owned(),
    ] {
        raw_put(&served.base, ca_ref, &target, &a2.body())
            .await
            .refused(StatusCode::BAD_REQUEST, "bad_id");
    }

    // Nothing refused left a row or a file.
    let admin = Admin::open(&data).unwrap();
    let rows = admin.store().segments(&SegmentFilter::default()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].session_id, rows[0].sequence), (session_a, 1));
    assert_eq!(files(&data.join("blobs")), blobs_before);
    assert_eq!(files(&data.join("staging")), Vec::<String>::new());
    assert!(!tmp.path().join("etc").exists() && !data.join("etc").exists());

    // The API describes itself, and unknown paths answer in JSON too.
    let openapi = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(openapi.status(), StatusCode::OK);
    let doc: serde_json::Value = openapi.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/segments/{session}/{sequence}"]["put"].is_object());
    let resp = api
        .http
        .get(format!("{}/v1/nothing-here", api.base))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer = Answer {
        status,
        json: resp.json().await.unwrap_or_default(),
    };
    answer.refused(StatusCode::NOT_FOUND, "not_found");

    // Every refusal is counted under its cause.
    let metrics = api
        .http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(&api.monitor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (cause, n) in [
        ("bad_signature", 1),
        ("unknown_device", 1),
        ("revoked_device", 1),
        ("manifest_mismatch", 3),
        ("wrong_device", 1),
        ("body_too_large", 1),
        ("bad_body", 1),
        ("malformed_manifest", 1),
        ("body_unreadable", 1),
        ("bad_id", 12),
    ] {
        let line = format!("vigil_vault_segments_rejected_total{{cause=\"{cause}\"}} {n}");
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(metrics.contains("vigil_vault_segments_stored_total 1\n"));
    assert!(metrics.contains("vigil_vault_segments_duplicate_total 1\n"));
}
