//! Issue 13 point 12: no key ever changed. Each of the vault's keys is rotated while the server
//! runs and an enrolled device keeps working without re-enrolling: it learns the new recipient
//! and the new receipt key from signed policy, and follows the new policy key from the one it
//! enrolled with; what was sealed, receipted and anchored before stays readable and verifiable.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use vigil_proto::api::{PolicyPoll, SignedPolicyPoll, POLICY_POLL_KIND};
use vigil_proto::key_rotation::{is_wrong_signer, verify_policy};
use vigil_proto::policy::SignedPolicy;
use vigil_proto::receipt::SignedReceipt;

use super::*;

fn key_of(b64: &str) -> VerifyingKey {
    VerifyingKey::from_bytes(&B64.decode(b64).unwrap().try_into().unwrap()).unwrap()
}

impl Rig {
    /// The newest policy statement for `device` after version `after` (waits up to 5 s).
    async fn poll(&self, key: &SigningKey, device: Uuid, after: u64) -> Vec<u8> {
        let poll = PolicyPoll {
            kind: POLICY_POLL_KIND.into(),
            device_id: device,
            sent_at: time::OffsetDateTime::now_utc(),
            after,
            wait_seconds: 5,
        };
        let body = SignedPolicyPoll::sign(poll, key)
            .unwrap()
            .as_bytes()
            .to_vec();
        let resp = self
            .http
            .post(self.url("/v1/policy/poll"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "no new policy");
        resp.bytes().await.unwrap().to_vec()
    }

    /// Uploads a segment; the status and the answer's bytes (the signed receipt on success).
    async fn upload(
        &self,
        key: &SigningKey,
        session: Uuid,
        seq: u64,
        segment: &support::Segment,
    ) -> (StatusCode, Vec<u8>) {
        let req = self
            .http
            .put(self.url(&format!("/v1/segments/{session}/{seq}")))
            .header("content-type", vigil_proto::frame::CONTENT_TYPE);
        let resp = support::signed_upload(req, key, session, seq, segment.body())
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    fn rotate(&self, which: &str) -> String {
        run_ok(&[
            "keys",
            "rotate",
            which,
            "--data",
            &self.data,
            "--reason",
            "annual rotation",
        ])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vault_key_rotates_while_agents_keep_recording() {
    let rig = Rig::start();
    let device_key = DeviceKey::generate();
    let pem = device_key.to_pkcs8_pem().unwrap();
    let same_key = || DeviceKey::from_pkcs8_pem(&pem, "test").unwrap();
    let signing = device_key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let device = me.device_id;
    let enrolled_policy = key_of(&me.policy_public_key);
    let enrolled_receipt = key_of(&me.receipt_public_key);
    let session = Uuid::new_v4();
    let sealer_for = |recipients: &[String]| {
        Sealer::with_device_id(
            Recipients::parse(recipients).unwrap(),
            same_key(),
            device.to_string(),
        )
    };
    let mut old_sealer = sealer_for(&me.recipients);
    let first = next_segment(&mut old_sealer, &device.to_string(), session, 1);
    let (status, receipt) = rig.upload(&signing, session, 1, &first).await;
    assert_eq!(status, StatusCode::CREATED);
    SignedReceipt::verify(&receipt, Some(&enrolled_receipt)).unwrap();

    // The recording identity: the next statement names the new recipient, still signed by the
    // enrolled policy key.
    let out = rig.rotate("recording");
    assert!(out.contains("recording key rotated"), "{out}");
    let bytes = rig.poll(&signing, device, 0).await;
    let (statement, keys) = verify_policy(&bytes, &enrolled_policy, None, device).unwrap();
    assert_eq!(keys.policy, enrolled_policy);
    let recipients = statement.document.recipients.clone();
    assert_eq!(recipients.len(), 1);
    assert_ne!(recipients, me.recipients, "a new recipient");
    // An agent that has not heard yet still gets its segment stored (grace); one that has
    // seals its next session to the new recipient.
    let late = next_segment(&mut old_sealer, &device.to_string(), session, 2);
    assert_eq!(
        rig.upload(&signing, session, 2, &late).await.0,
        StatusCode::CREATED
    );
    let next = Uuid::new_v4();
    let mut new_sealer = sealer_for(&recipients);
    let third = next_segment(&mut new_sealer, &device.to_string(), next, 1);
    assert_eq!(
        rig.upload(&signing, next, 1, &third).await.0,
        StatusCode::CREATED
    );

    // The policy key: the next statement is signed by a new key that the enrolled one
    // endorses; believed through the chain, refused without it.
    let version = statement.document.version;
    rig.rotate("policy");
    let bytes = rig.poll(&signing, device, version).await;
    let err = SignedPolicy::verify_for(&bytes, &enrolled_policy, device).unwrap_err();
    assert!(is_wrong_signer(&err), "{err}");
    let (statement, keys) = verify_policy(&bytes, &enrolled_policy, None, device).unwrap();
    assert_ne!(keys.policy, enrolled_policy);
    assert_eq!(
        fs::read_to_string(std::path::Path::new(&rig.data).join("keys/policy.pub"))
            .unwrap()
            .trim(),
        B64.encode(keys.policy.as_bytes())
    );

    // The receipt key: endorsed in the next statement; receipts from now on are signed by it.
    rig.rotate("receipt");
    let bytes = rig.poll(&signing, device, statement.document.version).await;
    let (_, keys) = verify_policy(&bytes, &enrolled_policy, None, device).unwrap();
    let new_receipt = keys.receipt.expect("the new receipt key is endorsed");
    assert_ne!(new_receipt, enrolled_receipt);
    let fourth = next_segment(&mut new_sealer, &device.to_string(), next, 2);
    let (status, receipt) = rig.upload(&signing, next, 2, &fourth).await;
    assert_eq!(status, StatusCode::CREATED);
    SignedReceipt::verify(&receipt, Some(&new_receipt)).unwrap();
    assert!(SignedReceipt::verify(&receipt, Some(&enrolled_receipt)).is_err());

    // Everything from before opens and verifies: segments sealed to the old and the new
    // identity play, and an export made now verifies against the current receipt key alone,
    // receipts signed by the old key included.
    let vault = rig.library();
    for (session, seq) in [(session, 1), (session, 2), (next, 1)] {
        let mut media = String::new();
        std::io::Read::read_to_string(
            &mut vault
                .open_media(session, seq, vigil_proto::MediaKind::Screen)
                .unwrap(),
            &mut media,
        )
        .unwrap();
        assert_eq!(media, format!("screen {seq}"));
    }
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    run_ok(&[
        "export",
        "--data",
        &rig.data,
        "--device",
        &device.to_string(),
        "--out",
        export.to_str().unwrap(),
        "--reason",
        "dispute 7",
    ]);
    let verified = support::vault(&[
        "verify",
        export.to_str().unwrap(),
        "--allow-gaps",
        "--receipt-key",
        &B64.encode(new_receipt.as_bytes()),
    ])
    .output()
    .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // Each rotation is in the audit log with its reason, and the keys are young again.
    let audit = run_ok(&["audit", "--data", &rig.data]);
    for which in ["recording", "policy", "receipt"] {
        assert!(
            audit.lines().any(|l| l.contains("\tkeys.rotate\t")
                && l.contains(&format!("\t{which} "))
                && l.contains("annual rotation")),
            "{which}: {audit}"
        );
    }
    let status = run_ok(&["keys", "status", "--data", &rig.data]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("recording\t0\t365\tok")),
        "{status}"
    );
    assert!(!status.contains("DUE"), "{status}");
}

/// Issue 13 point 12, device keys: a device replaces its key without re-enrolling. Only its
/// current key can name the successor, the successor must sign too, a replay or a stale
/// statement does nothing, and no one can take another device's key. Segments signed with
/// the old key before the change still arrive; from then on the new key speaks for the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_replaces_its_key_and_no_one_else_can() {
    use vigil_proto::rekey::RekeyRequest;
    let rig = Rig::start();
    let old = DeviceKey::generate();
    let new = DeviceKey::generate();
    let other = DeviceKey::generate();
    let me = rig.enroll(old.signing_key()).await;
    let them = rig.enroll(other.signing_key()).await;
    let device = me.device_id;
    let session = Uuid::new_v4();
    let mut sealer = Sealer::with_device_id(
        Recipients::parse(&me.recipients).unwrap(),
        DeviceKey::from_pkcs8_pem(&old.to_pkcs8_pem().unwrap(), "t").unwrap(),
        device.to_string(),
    );
    let first = next_segment(&mut sealer, &device.to_string(), session, 1);
    assert_eq!(
        rig.upload(old.signing_key(), session, 1, &first).await.0,
        StatusCode::CREATED
    );
    // Sealed before the change, still in the spool when it happens.
    let waiting = next_segment(&mut sealer, &device.to_string(), session, 2);

    let post = |request: &RekeyRequest| {
        rig.http
            .post(rig.url("/v1/devices/rekey"))
            .json(request)
            .send()
    };
    let code = |resp: reqwest::Response| async move {
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.unwrap_or_default();
        (status, v["error"].as_str().unwrap_or("").to_owned())
    };
    let now = time::OffsetDateTime::now_utc();
    let stranger = SigningKey::from_bytes(&[201; 32]);
    // A stranger names a successor for the device.
    let forged = RekeyRequest::sign(device, &stranger, new.signing_key(), now).unwrap();
    assert_eq!(
        code(post(&forged).await.unwrap()).await,
        (StatusCode::FORBIDDEN, "unknown_device".into())
    );
    // The device's key names a successor that did not sign.
    let mut unproven =
        RekeyRequest::sign(device, old.signing_key(), new.signing_key(), now).unwrap();
    unproven.by_new = RekeyRequest::sign(device, old.signing_key(), &stranger, now)
        .unwrap()
        .by_new;
    assert_eq!(
        code(post(&unproven).await.unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );
    // Signed an hour ago (a captured request).
    let stale = RekeyRequest::sign(
        device,
        old.signing_key(),
        new.signing_key(),
        now - time::Duration::hours(1),
    )
    .unwrap();
    assert_eq!(
        code(post(&stale).await.unwrap()).await,
        (StatusCode::BAD_REQUEST, "stale".into())
    );
    // The other device's key as a successor.
    let theft = RekeyRequest::sign(device, old.signing_key(), other.signing_key(), now).unwrap();
    assert_eq!(
        code(post(&theft).await.unwrap()).await,
        (StatusCode::CONFLICT, "key_in_use".into())
    );
    // Another device's key naming a successor for this device.
    let crossed = RekeyRequest::sign(device, other.signing_key(), &stranger, now).unwrap();
    assert_eq!(
        code(post(&crossed).await.unwrap()).await.0,
        StatusCode::BAD_REQUEST
    );

    // The real change; replayed, it does nothing.
    let real = RekeyRequest::sign(device, old.signing_key(), new.signing_key(), now).unwrap();
    let resp = post(&real).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let new_id = vigil_proto::device_key_id(&new.signing_key().verifying_key());
    assert_eq!(answer["key_id"], new_id.as_str());
    assert_eq!(
        code(post(&real).await.unwrap()).await,
        (StatusCode::FORBIDDEN, "unknown_device".into())
    );

    // The waiting segment (old key's manifest) goes up under the new key's upload signature;
    // a new session is the new key's throughout.
    assert_eq!(
        rig.upload(new.signing_key(), session, 2, &waiting).await.0,
        StatusCode::CREATED
    );
    let next = Uuid::new_v4();
    let mut sealer = Sealer::with_device_id(
        Recipients::parse(&me.recipients).unwrap(),
        DeviceKey::from_pkcs8_pem(&new.to_pkcs8_pem().unwrap(), "t").unwrap(),
        device.to_string(),
    );
    let third = next_segment(&mut sealer, &device.to_string(), next, 1);
    assert_eq!(
        rig.upload(new.signing_key(), next, 1, &third).await.0,
        StatusCode::CREATED
    );
    // The other device cannot pass its segments off as this one's.
    let mut theirs = Sealer::with_device_id(
        Recipients::parse(&them.recipients).unwrap(),
        DeviceKey::from_pkcs8_pem(&other.to_pkcs8_pem().unwrap(), "t").unwrap(),
        device.to_string(),
    );
    let fake = next_segment(&mut theirs, &device.to_string(), Uuid::new_v4(), 1);
    assert_ne!(
        rig.upload(new.signing_key(), Uuid::new_v4(), 1, &fake)
            .await
            .0,
        StatusCode::CREATED
    );
    // Heartbeats: the new key, and for the grace period the old one, speak for the device.
    for key in [new.signing_key(), old.signing_key()] {
        let signed = SignedHeartbeat::sign(heartbeat(device, next, 1, vec![]), key).unwrap();
        let (status, code) = rig.post("/v1/heartbeat", signed.as_bytes().to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{code}");
    }

    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains(&format!("device:{device}\tdevice.rekey\t"))
                && l.contains(&format!("-> {new_id}"))),
        "{audit}"
    );
    let devices = run_ok(&["device", "list", "--data", &rig.data]);
    assert!(devices.contains(&new_id), "{devices}");
    let status = run_ok(&["keys", "status", "--data", &rig.data]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with(&format!("device {device}\t0\t730\tok\t{new_id}"))),
        "{status}"
    );
}
