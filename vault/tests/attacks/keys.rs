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
    let (statement, keys) = verify_policy(&bytes, &enrolled_policy, device).unwrap();
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
    let (statement, keys) = verify_policy(&bytes, &enrolled_policy, device).unwrap();
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
    let (_, keys) = verify_policy(&bytes, &enrolled_policy, device).unwrap();
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
