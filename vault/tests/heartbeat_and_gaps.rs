//! Heartbeats and gap reports on the real server: a device's signed heartbeat turns missing
//! segments into "in transit" (the agent still holds them) or "lost" (it does not); forged or
//! foreign heartbeats are refused and counted; `GET /v1/gaps` needs an admin's credentials;
//! `/metrics` shows the fleet's backlog and the gap figures.

#[allow(dead_code)]
mod support;

use std::fs;

use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use support::{next_segment, pinned_client, run_ok, Served};
use uuid::Uuid;
use vigil_proto::api::{Backlog, Heartbeat, SessionProgress, SignedHeartbeat, HEARTBEAT_KIND};
use vigil_seal::{DeviceKey, Recipients, Sealer};

fn heartbeat(device: Uuid, sessions: Vec<SessionProgress>, backlog: u64) -> Heartbeat {
    Heartbeat {
        kind: HEARTBEAT_KIND.into(),
        device_id: device,
        sent_at: time::OffsetDateTime::now_utc(),
        sessions,
        backlog: Backlog {
            segments: backlog,
            bytes: backlog * 1000,
            oldest: Some(time::OffsetDateTime::now_utc() - time::Duration::seconds(90)),
        },
        agent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_classify_gaps_and_the_gap_api_needs_an_admin() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    let init = run_ok(&["init", "--data", d, "--host", "127.0.0.1"]);
    support::add_to_vault_toml(std::path::Path::new(d), support::NO_SECOND_FACTOR);
    let init_password = init
        .lines()
        .find_map(|l| l.strip_prefix("one-time password: "))
        .unwrap()
        .to_owned();
    let served = Served::start(&data, 1 << 20);
    let http = pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap());
    let base = served.base.clone();

    let enroll = |key: SigningKey| {
        let (http, base) = (http.clone(), base.clone());
        async move { support::enroll_device(&http, &base, d, &key).await }
    };
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = enroll(signing.clone()).await;
    let other_key = SigningKey::from_bytes(&[42; 32]);
    let other = enroll(other_key.clone()).await;
    let mut sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
    let id = me.device_id.to_string();

    // Session: 1, 2 and 5 arrive; the agent produced 6 and still holds 3 and 6; 4 is lost.
    let session = Uuid::new_v4();
    let segments: Vec<_> = (1..=6)
        .map(|seq| next_segment(&mut sealer, &id, session, seq))
        .collect();
    for seq in [1u64, 2, 5] {
        let req = http.put(format!("{base}/v1/segments/{session}/{seq}"));
        let body = segments[seq as usize - 1].body();
        let resp = support::signed_upload(req, &signing, session, seq, body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let post = |body: Vec<u8>| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let resp = http
                .post(format!("{base}/v1/heartbeat"))
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            (status, v["error"].as_str().unwrap_or("").to_owned())
        }
    };
    let report = SessionProgress {
        session_id: session,
        produced: 6,
        pending: vec![3, 6],
        closed: false,
    };
    let hb = heartbeat(me.device_id, vec![report.clone()], 2);
    let signed = SignedHeartbeat::sign(hb.clone(), &signing).unwrap();
    assert_eq!(post(signed.as_bytes().to_vec()).await.0, StatusCode::OK);

    // Forged (signed by another key), foreign (another enrolled device claiming this id), and
    // malformed heartbeats are refused.
    let forged = String::from_utf8(signed.as_bytes().to_vec())
        .unwrap()
        .replace("\"produced\":6", "\"produced\":9");
    assert_eq!(
        post(forged.into_bytes()).await,
        (StatusCode::FORBIDDEN, "bad_signature".into())
    );
    let claiming = SignedHeartbeat::sign(hb.clone(), &other_key).unwrap();
    assert_eq!(
        post(claiming.as_bytes().to_vec()).await,
        (StatusCode::FORBIDDEN, "unknown_device".into())
    );
    assert_eq!(post(b"{}".to_vec()).await.1, "malformed");
    // Another device cannot speak for this session: its report is ignored.
    let hijack = heartbeat(
        other.device_id,
        vec![SessionProgress {
            pending: vec![],
            produced: 9,
            ..report.clone()
        }],
        0,
    );
    assert_eq!(
        post(
            SignedHeartbeat::sign(hijack.clone(), &other_key)
                .unwrap()
                .as_bytes()
                .to_vec()
        )
        .await
        .0,
        StatusCode::OK
    );

    // The CLI and the API agree: missing 3-4 and 6; 3 and 6 in transit, 4 lost.
    let gaps = run_ok(&["gaps", "--data", d]);
    assert!(
        gaps.contains("missing=3-4, 6 produced=6 in_transit=3, 6 lost=4"),
        "{gaps}"
    );
    let url = format!("{base}/v1/gaps?session={session}");
    assert_eq!(
        http.get(&url).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        http.get(&url)
            .basic_auth("admin", Some("wrong"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // The one-time password of `init` serves only to change it (issue 13 point 6).
    let resp = http
        .get(&url)
        .basic_auth("admin", Some(&init_password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "password_change_required");
    let password = "a new admin password, long enough";
    support::change_password(&http, &base, "admin", &init_password, password).await;
    let resp = http
        .get(&url)
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.unwrap();
    let s = &body["sessions"][0];
    assert_eq!(s["in_transit"], serde_json::json!([[3, 3], [6, 6]]));
    assert_eq!(s["lost"], serde_json::json!([[4, 4]]));
    assert_eq!(s["produced"], 6);

    // Metrics: backlog as reported, gap gauges, refusals by cause.
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(support::monitor_token(d))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "vigil_vault_agent_backlog_segments 2",
        "vigil_vault_agent_backlog_bytes 2000",
        "vigil_vault_gap_segments_in_transit 2",
        "vigil_vault_gap_segments_lost 1",
        "vigil_vault_heartbeats_total 2",
        "vigil_vault_heartbeats_refused_total{cause=\"bad_signature\"} 1",
        "vigil_vault_heartbeats_refused_total{cause=\"unknown_device\"} 1",
        "vigil_vault_heartbeats_refused_total{cause=\"malformed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(metrics.contains("vigil_vault_agent_backlog_oldest_seconds 9"));

    // The rest arrives: nothing is missing any more.
    for seq in [3u64, 4, 6] {
        let req = http.put(format!("{base}/v1/segments/{session}/{seq}"));
        let body = segments[seq as usize - 1].body();
        let resp = support::signed_upload(req, &signing, session, seq, body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let gaps = run_ok(&["gaps", "--data", d, "--session", &session.to_string()]);
    assert!(gaps.contains("missing=none"), "{gaps}");
}
