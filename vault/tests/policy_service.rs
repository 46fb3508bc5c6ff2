//! The policy service on the real `vigil-vault serve` over TLS (issue 5, part 2): validation
//! errors that name the field and the layer (CLI and HTTP), supervisors limited to their
//! teams, versions and history, and the signed long poll an agent holds — refused for an
//! unknown key or a stale clock, answered at once when newer, held and answered when a change
//! lands, 204 when the wait runs out; each answer signed for the asking device only.

#[allow(dead_code)]
#[path = "support/console.rs"]
mod console;
#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use console::{Console, PASSWORD};
use ed25519_dalek::VerifyingKey;
use reqwest::StatusCode;
use serde_json::{json, Value};
use vigil_proto::api::{PolicyPoll, SignedPolicyPoll, POLICY_POLL_KIND};
use vigil_proto::policy::SignedPolicy;
use vigil_seal::DeviceKey;
use vigil_vault_core::enroll::EnrollResponse;

fn poll_body(key: &DeviceKey, device: uuid::Uuid, after: u64, wait: u32, skew: i64) -> Vec<u8> {
    let poll = PolicyPoll {
        kind: POLICY_POLL_KIND.into(),
        device_id: device,
        sent_at: time::OffsetDateTime::now_utc() + time::Duration::seconds(skew),
        after,
        wait_seconds: wait,
    };
    SignedPolicyPoll::sign(poll, key.signing_key())
        .unwrap()
        .as_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_is_validated_scoped_versioned_and_pushed_by_signed_long_poll() {
    let c = Console::start().await;
    let d = c.data_str().to_owned();

    // The CLI names what is wrong and stores nothing.
    let file = c.data.join("layer.json");
    for (doc, says) in [
        (
            r#"{"fps": 0}"#,
            "Team policy: fps = 0 is out of range (1-30)",
        ),
        (r#"{"fsp": 5}"#, "unknown field `fsp`"),
        (
            r#"{"mask_rules": [{"id": "r", "action": {"screen": "full", "audio": true, "tail_ms": 0}}]}"#,
            "matches nothing in particular",
        ),
        (
            r#"{"retention_screen_days": 90, "retention_voice_days": 30}"#,
            "longer than voice",
        ),
    ] {
        std::fs::write(&file, doc).unwrap();
        let out = support::vault(&[
            "policy",
            "set",
            "--data",
            &d,
            "--team",
            "north",
            "--file",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert!(!out.status.success(), "{doc} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{doc}: {err}");
    }
    let history = support::run_ok(&["policy", "history", "--data", &d]);
    assert_eq!(history.lines().count(), 1, "nothing stored: {history}");

    // A device polls: unknown keys and stale clocks are refused.
    let token = support::run_ok(&["token", "create", "--data", &d, "--team", "north"]);
    let key = DeviceKey::generate();
    let enrolled: EnrollResponse = c
        .http
        .post(c.url("/v1/enroll"))
        .json(&json!({
            "token": token.trim(),
            "device_public_key": B64.encode(key.signing_key().verifying_key().as_bytes()),
            "hostname": "desk-9",
            "user": "agent9",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device = enrolled.device_id;
    let policy_key: [u8; 32] = B64
        .decode(&enrolled.policy_public_key)
        .unwrap()
        .try_into()
        .unwrap();
    let policy_key = VerifyingKey::from_bytes(&policy_key).unwrap();
    let poll = |body: Vec<u8>| {
        c.http
            .post(c.url("/v1/policy/poll"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let stranger = DeviceKey::generate();
    let resp = poll(poll_body(&stranger, device, 0, 1, 0)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = poll(poll_body(&key, device, 0, 1, -3600)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "stale");
    // Nothing set yet: the wait runs out.
    let resp = poll(poll_body(&key, device, 0, 1, 0)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // The supervisor of north sets her team's layer over HTTPS; not the organization's, not
    // another team's; an invalid layer is 422 naming the field.
    let sup = c.login("sup", PASSWORD).await;
    let put = |scope: &str, body: Value| {
        c.with(&sup, c.http.put(c.url(&format!("/v1/policy/{scope}"))))
            .json(&body)
            .send()
    };
    for scope in ["organization", "team:south"] {
        let resp = put(scope, json!({"layer": {"screen": false}, "reason": "x"}))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{scope}");
    }
    let resp = put("team:north", json!({"layer": {"fps": 99}, "reason": "x"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("fps = 99"),
        "{body}"
    );

    // A held poll is answered as soon as the change lands, signed for this device.
    let held = tokio::spawn(poll(poll_body(&key, device, 0, 20, 0)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let resp = put(
        "team:north",
        json!({"layer": {"fps": 2}, "reason": "PCI review"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set: Value = resp.json().await.unwrap();
    assert_eq!(set["version"], 1);
    assert_eq!(set["devices_affected"], 2, "{set}");
    let answer = held.await.unwrap().unwrap();
    let waited = asked.elapsed();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");
    let bytes = answer.bytes().await.unwrap();
    let signed = SignedPolicy::verify_for(&bytes, &policy_key, device).unwrap();
    assert_eq!(signed.document.version, 1);
    assert_eq!(signed.document.policy.fps, 2);
    assert!(SignedPolicy::verify_for(&bytes, &policy_key, uuid::Uuid::new_v4()).is_err());
    // Holding version 1, an immediate poll waits again.
    let resp = poll(poll_body(&key, device, 1, 1, 0)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // History and the audit log say who, when and why.
    let resp = c
        .with(&sup, c.http.get(c.url("/v1/policy/team:north")))
        .send()
        .await
        .unwrap();
    let layer: Value = resp.json().await.unwrap();
    assert_eq!(layer["version"], 1);
    assert_eq!(layer["layer"], json!({"fps": 2}));
    assert_eq!(layer["history"][0]["author"], "user:sup");
    assert_eq!(layer["history"][0]["reason"], "PCI review");
    let audit = support::run_ok(&["audit", "--data", &d]);
    assert!(
        audit.lines().any(
            |l| l.contains("\tuser:sup\tpolicy.set\tteam:north v1") && l.contains("PCI review")
        ),
        "{audit}"
    );
    let effective = support::run_ok(&[
        "policy",
        "get",
        "--data",
        &d,
        "--effective",
        &device.to_string(),
    ]);
    let effective: Value = serde_json::from_str(&effective).unwrap();
    assert_eq!(effective["version"], 1);
    assert_eq!(effective["policy"]["fps"], 2);
    assert_eq!(
        effective["policy"]["screen"], true,
        "defaults fill the rest"
    );
}
