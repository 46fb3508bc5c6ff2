//! Ingest refusals that need more than one device or out-of-order arrival: the hash chain is
//! checked when the second segment of a link arrives, a session belongs to one device, unknown
//! keys, malformed manifests and truncated bodies are refused.

#[allow(dead_code)]
mod support;

use std::fs;

use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use support::{manifest, next_segment, pinned_client, run_ok, Served};
use uuid::Uuid;
use vigil_proto::frame::SegmentBody;
use vigil_proto::{MediaKind, SignedManifest};
use vigil_seal::{DeviceKey, Recipients, Sealer};
use vigil_vault_core::enroll::EnrollResponse;

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn enroll(&self, data: &str, key: &SigningKey) -> EnrollResponse {
        support::enroll_device(&self.http, &self.base, data, key).await
    }

    /// Uploads; returns the status and the error code (empty on success).
    /// Uploads as the device of `key`.
    async fn put(
        &self,
        key: &SigningKey,
        session: Uuid,
        seq: u64,
        body: Vec<u8>,
    ) -> (StatusCode, String) {
        let req = self
            .http
            .put(format!("{}/v1/segments/{session}/{seq}", self.base));
        let resp = support::signed_upload(req, key, session, seq, body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        (status, v["error"].as_str().unwrap_or("").to_owned())
    }
}

/// A manifest signed outside any sealer's chain, naming `prev` as predecessor.
fn signed_with_prev(
    sealer: &Sealer,
    key: &SigningKey,
    device_id: &str,
    session: Uuid,
    seq: u64,
    prev: Option<String>,
) -> Vec<u8> {
    let screen = sealer.seal_blob(b"s").unwrap();
    let voice = sealer.seal_blob(b"v").unwrap();
    let mut m = manifest(device_id, session, seq, &screen, &voice);
    m.prev_manifest_sha256 = prev;
    let signed = SignedManifest::sign(m, key).unwrap();
    SegmentBody::encode(
        signed.as_bytes(),
        &[(MediaKind::Screen, &screen), (MediaKind::Voice, &voice)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_links_session_owners_and_malformed_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    run_ok(&["init", "--data", d, "--host", "127.0.0.1"]);
    let served = Served::start(&data, 1 << 20);
    let client = Client {
        http: pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap()),
        base: served.base.clone(),
    };

    let key_a = DeviceKey::generate();
    let sign_a = key_a.signing_key().clone();
    let a = client.enroll(d, &sign_a).await;
    let key_b = DeviceKey::generate();
    let sign_b = key_b.signing_key().clone();
    let b = client.enroll(d, &sign_b).await;
    let recipients = Recipients::parse(&a.recipients).unwrap();
    let mut sealer_a = Sealer::new(recipients.clone(), key_a);
    let sealer_b = Sealer::new(recipients, key_b);
    let (id_a, id_b) = (a.device_id.to_string(), b.device_id.to_string());

    // Out of order: #2 first (its link cannot be checked yet), then a #1 that #2 does not
    // chain to is refused, and the real #1 is accepted.
    let session = Uuid::new_v4();
    let seg1 = next_segment(&mut sealer_a, &id_a, session, 1);
    let seg2 = next_segment(&mut sealer_a, &id_a, session, 2);
    assert_eq!(
        client.put(&sign_a, session, 2, seg2.body()).await.0,
        StatusCode::CREATED
    );
    let impostor = signed_with_prev(&sealer_a, &sign_a, &id_a, session, 1, None);
    assert_eq!(
        client.put(&sign_a, session, 1, impostor).await,
        (StatusCode::CONFLICT, "chain_broken".into())
    );
    assert_eq!(
        client.put(&sign_a, session, 1, seg1.body()).await.0,
        StatusCode::CREATED
    );

    // #3 naming another predecessor than the stored #2.
    let wrong = signed_with_prev(&sealer_a, &sign_a, &id_a, session, 3, Some("00".repeat(32)));
    assert_eq!(
        client.put(&sign_a, session, 3, wrong).await,
        (StatusCode::CONFLICT, "chain_broken".into())
    );
    // A first segment naming a predecessor; a later one naming none.
    let other = Uuid::new_v4();
    let body = signed_with_prev(&sealer_a, &sign_a, &id_a, other, 1, Some("11".repeat(32)));
    assert_eq!(client.put(&sign_a, other, 1, body).await.1, "chain_broken");
    let body = signed_with_prev(&sealer_a, &sign_a, &id_a, other, 2, None);
    assert_eq!(client.put(&sign_a, other, 2, body).await.1, "chain_broken");

    // Device B cannot add to device A's session, nor claim to be A.
    let head = seg2.manifest.digest().0;
    let body = signed_with_prev(&sealer_b, &sign_b, &id_b, session, 3, Some(head));
    assert_eq!(
        client.put(&sign_b, session, 3, body).await,
        (StatusCode::FORBIDDEN, "wrong_device".into())
    );
    let fresh = Uuid::new_v4();
    let body = signed_with_prev(&sealer_b, &sign_b, &id_a, fresh, 1, None);
    assert_eq!(
        client.put(&sign_b, fresh, 1, body).await,
        (StatusCode::BAD_REQUEST, "manifest_mismatch".into())
    );

    // An unenrolled key.
    let stranger = SigningKey::from_bytes(&[9; 32]);
    let body = signed_with_prev(&sealer_b, &stranger, "x", Uuid::new_v4(), 1, None);
    let s = Uuid::new_v4();
    let (status, code) = client.put(&stranger, s, 1, body).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "unknown_device")
    );

    // Malformed manifest, truncated body, path that disagrees with the manifest, a missing blob.
    let garbage = SegmentBody::encode(b"{not json", &[]);
    assert_eq!(
        client.put(&sign_a, s, 1, garbage).await,
        (StatusCode::BAD_REQUEST, "malformed_manifest".into())
    );
    let seg3 = next_segment(&mut sealer_a, &id_a, session, 3);
    let mut cut = seg3.body();
    cut.truncate(cut.len() - 5);
    assert_eq!(
        client.put(&sign_a, session, 3, cut).await,
        (StatusCode::BAD_REQUEST, "bad_body".into())
    );
    assert_eq!(
        client.put(&sign_a, session, 4, seg3.body()).await,
        (StatusCode::BAD_REQUEST, "manifest_mismatch".into())
    );
    let voice_only =
        SegmentBody::encode(seg3.manifest.as_bytes(), &[(MediaKind::Voice, &seg3.voice)]);
    assert_eq!(
        client.put(&sign_a, session, 3, voice_only).await,
        (StatusCode::BAD_REQUEST, "manifest_mismatch".into())
    );
    assert_eq!(
        client.put(&sign_a, session, 3, seg3.body()).await.0,
        StatusCode::CREATED
    );

    // Nothing refused left a trace: the session holds exactly #1..#3, with no gap.
    let gaps = run_ok(&["gaps", "--data", d, "--session", &session.to_string()]);
    assert!(
        gaps.contains("stored=3 last=3 closed=no missing=none"),
        "{gaps}"
    );
    let files = fs::read_dir(data.join(format!("blobs/{session}")))
        .unwrap()
        .count();
    assert_eq!(files, 9);
    // staging/ holds its shard folders (0…f), and no file.
    assert!(fs::read_dir(data.join("staging"))
        .unwrap()
        .flatten()
        .all(|shard| fs::read_dir(shard.path()).unwrap().count() == 0));
}
