//! The vault as IT and an agent use it: `init`, `serve` over TLS with the CA pinned, a token,
//! enrollment, real sealed segments, receipts, idempotence and every refusal of issue 4's first
//! slice, then `gaps`, `device revoke` and the stored tree checked offline.

#[allow(dead_code)]
mod support;

use std::fs;

use age::secrecy::SecretString;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use reqwest::StatusCode;
use support::{next_segment, pinned_client, run_ok, vault, Served, VAULT_KEY};
use uuid::Uuid;
use vigil_proto::frame::{SegmentBody, CONTENT_TYPE};
use vigil_proto::receipt::SignedReceipt;
use vigil_proto::{MediaKind, SignedManifest};
use vigil_seal::{DeviceKey, ProblemKind, Recipients, Sealer};
use vigil_vault_core::admin::Admin;
use vigil_vault_core::enroll::EnrollResponse;

const MAX_BODY: usize = 64 * 1024;

/// Uploads as the device of `key` (a URL whose ids do not parse goes without a signature:
/// the vault refuses it for its ids first).
async fn put(
    client: &reqwest::Client,
    key: &ed25519_dalek::SigningKey,
    url: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let req = client.put(url).header("content-type", CONTENT_TYPE);
    let mut ids = url.rsplit('/');
    let (seq, session) = (ids.next(), ids.next());
    let req = match (
        session.and_then(|s| s.parse::<Uuid>().ok()),
        seq.and_then(|q| q.parse::<u64>().ok()),
    ) {
        (Some(session), Some(seq)) => support::signed_upload(req, key, session, seq, body),
        _ => req.body(body),
    };
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.bytes().await.unwrap().to_vec())
}

fn error_code(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_ingest_receipts_refusals_and_gaps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();

    // init: keys encrypted at rest, CA + certificate, one-time admin password.
    let out = run_ok(&[
        "init",
        "--data",
        d,
        "--host",
        "localhost",
        "--host",
        "127.0.0.1",
    ]);
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("one-time password: "))
        .expect("password printed");
    let admin = Admin::open(&data).unwrap();
    assert!(admin.check_password("admin", password).unwrap());
    assert!(!admin.check_password("admin", "wrong").unwrap());
    let bundle = fs::read(data.join("keys/private.age")).unwrap();
    assert!(!String::from_utf8_lossy(&bundle).contains("AGE-SECRET-KEY"));
    assert!(!vault(&["init", "--data", d]).status().unwrap().success());

    // serve refuses a wrong vault key, then runs with the right one.
    let wrong = vault(&["serve", "--data", d, "--listen", "127.0.0.1:0"])
        .env("VIGIL_VAULT_KEY", "a wrong vault key, long enough")
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let served = Served::start(&data, MAX_BODY);
    let base = &served.base;
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let client = pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap());
    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    // A client that trusts another CA cannot talk to the vault.
    let other_ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let stranger = pinned_client(other_ca.cert.pem().as_bytes());
    assert!(stranger.get(format!("{base}/health")).send().await.is_err());

    // Enrollment with a one-use token.
    let token = run_ok(&["token", "create", "--data", d, "--team", "blue"]);
    let token = token.trim();
    assert!(token.starts_with("vgt_"));
    let device = DeviceKey::generate();
    let device_signing = device.signing_key().clone();
    let signing = device.signing_key().clone();
    let enroll_body = |token: &str| {
        serde_json::json!({
            "token": token,
            "device_public_key": B64.encode(signing.verifying_key().as_bytes()),
            "hostname": "desk-17",
            "user": "agent1",
        })
    };
    let resp = client
        .post(format!("{base}/v1/enroll"))
        .json(&enroll_body(token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let enrolled: EnrollResponse = resp.json().await.unwrap();
    let again = client
        .post(format!("{base}/v1/enroll"))
        .json(&enroll_body(token))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "token reused");
    let expired = run_ok(&["token", "create", "--data", d, "--expires", "0s"]);
    let resp = client
        .post(format!("{base}/v1/enroll"))
        .json(&enroll_body(expired.trim()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "expired token");
    let recipient = fs::read_to_string(data.join("keys/recording.pub")).unwrap();
    assert_eq!(enrolled.recipients, vec![recipient.trim().to_owned()]);
    let policy_pub = fs::read_to_string(data.join("keys/policy.pub")).unwrap();
    assert_eq!(enrolled.policy_public_key, policy_pub.trim());
    let receipt_key: [u8; 32] = B64
        .decode(&enrolled.receipt_public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let receipt_key = VerifyingKey::from_bytes(&receipt_key).unwrap();
    let device_id = enrolled.device_id.to_string();

    // Real segments: sealed to the vault's recipient, signed by the device key, chained.
    let session = Uuid::new_v4();
    let mut sealer = Sealer::new(Recipients::parse(&enrolled.recipients).unwrap(), device);
    let seg1 = next_segment(&mut sealer, &device_id, session, 1);
    let seg2 = next_segment(&mut sealer, &device_id, session, 2);
    let seg3 = next_segment(&mut sealer, &device_id, session, 3);
    let seg4 = next_segment(&mut sealer, &device_id, session, 4);
    let url = |seq: u64| format!("{base}/v1/segments/{session}/{seq}");

    let (status, receipt1) = put(&client, &device_signing, &url(1), seg1.body()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&receipt1)
    );
    let receipt = SignedReceipt::verify(&receipt1, Some(&receipt_key))
        .unwrap()
        .document;
    assert_eq!(receipt.segment_id, seg1.manifest.document.segment_id);
    assert_eq!(receipt.session_id, session);
    assert_eq!(receipt.sequence, 1);
    assert_eq!(receipt.device_id, enrolled.device_id);
    assert_eq!(receipt.manifest_sha256, seg1.manifest.digest().0);

    // The same segment again: stored once, same receipt.
    let (status, again) = put(&client, &device_signing, &url(1), seg1.body()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, receipt1);

    // The same position with other content: 409.
    let (s, v) = (
        sealer.seal_blob(b"other").unwrap(),
        sealer.seal_blob(b"x").unwrap(),
    );
    let other =
        SignedManifest::sign(support::manifest(&device_id, session, 1, &s, &v), &signing).unwrap();
    let body = SegmentBody::encode(
        other.as_bytes(),
        &[(MediaKind::Screen, &s), (MediaKind::Voice, &v)],
    );
    let (status, err) = put(&client, &device_signing, &url(1), body).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&err), "conflict");

    // A forged signature (the manifest edited after signing): 403, nothing stored.
    let text = String::from_utf8(seg2.manifest.as_bytes().to_vec()).unwrap();
    let forged = text.replace("\"user\":\"agent1\"", "\"user\":\"agent2\"");
    assert_ne!(forged, text);
    let body = SegmentBody::encode(
        forged.as_bytes(),
        &[
            (MediaKind::Screen, &seg2.screen),
            (MediaKind::Voice, &seg2.voice),
        ],
    );
    let (status, err) = put(&client, &device_signing, &url(2), body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&err), "bad_signature");
    assert!(!data
        .join(format!("blobs/{session}/000002.manifest.json"))
        .exists());

    // A blob that does not match its manifest: 422.
    let mut bad_voice = seg3.voice.clone();
    let last = bad_voice.len() - 1;
    bad_voice[last] ^= 1;
    let body = SegmentBody::encode(
        seg3.manifest.as_bytes(),
        &[
            (MediaKind::Screen, &seg3.screen),
            (MediaKind::Voice, &bad_voice),
        ],
    );
    let (status, err) = put(&client, &device_signing, &url(3), body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&err), "blob_mismatch");

    // Path-traversal and malformed ids: 4xx, nothing written outside the blob folder.
    for bad in [
        format!("{base}/v1/segments/..%2F..%2Fescape/1"),
        format!("{base}/v1/segments/{session}/1%2F..%2F..%2Fescape"),
        format!("{base}/v1/segments/%2E%2E/1"),
        format!("{base}/v1/segments/{session}/0"),
    ] {
        let (status, _) = put(&client, &device_signing, &bad, seg3.body()).await;
        assert!(status.is_client_error(), "{bad}: {status}");
    }
    assert!(!tmp.path().join("escape").exists() && !data.join("escape").exists());

    // An oversized body: 413.
    let (status, _) = put(&client, &device_signing, &url(3), vec![0u8; MAX_BODY + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Segment 3 arrives (2 never does): stored, and `gaps` reports 2 missing.
    let (status, r3) = put(&client, &device_signing, &url(3), seg3.body()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&r3)
    );
    SignedReceipt::verify(&r3, Some(&receipt_key)).unwrap();
    let gaps = run_ok(&["gaps", "--data", d, "--session", &session.to_string()]);
    assert!(
        gaps.contains(&format!("{session} stored=2 last=3 closed=no missing=2")),
        "{gaps}"
    );

    // A revoked device's uploads are refused.
    run_ok(&["device", "revoke", "--data", d, &device_id]);
    let list = run_ok(&["device", "list", "--data", d]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&device_id) && l.ends_with("revoked")),
        "{list}"
    );
    let (status, err) = put(&client, &device_signing, &url(4), seg4.body()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&err), "revoked_device");

    // Every outcome above is counted in the metrics.
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(support::monitor_token(d))
        .send()
        .await
        .unwrap();
    let metrics = metrics.text().await.unwrap();
    for line in [
        "vigil_vault_segments_stored_total 2",
        "vigil_vault_segments_duplicate_total 1",
        "vigil_vault_enrollments_total 1",
        "vigil_vault_enrollments_refused_total{cause=\"invalid_token\"} 2",
        "vigil_vault_segments_rejected_total{cause=\"conflict\"} 1",
        "vigil_vault_segments_rejected_total{cause=\"bad_signature\"} 1",
        "vigil_vault_segments_rejected_total{cause=\"blob_mismatch\"} 1",
        "vigil_vault_segments_rejected_total{cause=\"bad_id\"} 3",
        "vigil_vault_segments_rejected_total{cause=\"body_too_large\"} 1",
        "vigil_vault_segments_rejected_total{cause=\"revoked_device\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }

    // The blob folder verifies offline like a spool: only the real gap is reported.
    let report = vigil_seal::verify_tree(&data.join("blobs")).unwrap();
    let problems: Vec<_> = report.problems().map(|p| p.kind).collect();
    assert_eq!(problems, vec![ProblemKind::SequenceGap], "{report:?}");
    // staging/ holds its shard folders (0…f), and no file.
    assert!(fs::read_dir(data.join("staging"))
        .unwrap()
        .flatten()
        .all(|shard| fs::read_dir(shard.path()).unwrap().count() == 0));

    // The organization can open the key bundle offline with the vault key (plain age + scrypt)
    // and decrypt what the vault stored.
    let identity = age::scrypt::Identity::new(SecretString::from(VAULT_KEY.to_owned()));
    let keys: serde_json::Value =
        serde_json::from_slice(&age::decrypt(&identity, &bundle).unwrap()).unwrap();
    let stored = fs::read(data.join(format!("blobs/{session}/000001.screen.age"))).unwrap();
    let plain =
        vigil_seal::open_blob(keys["recording_identity"].as_str().unwrap(), &stored).unwrap();
    assert_eq!(plain, b"screen 1");
}
