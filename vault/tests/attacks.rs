//! The attacks of issue 13, each against a real vault over TLS: an enrolled device (the recorded
//! person holds its key) or a network client tries the path, and the vault refuses it with a
//! clear error, storing nothing.

#[allow(dead_code)]
mod support;

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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base)
    }

    /// Enrolls a device with `key`; its id and the recipients it must seal to.
    async fn enroll(&self, key: &SigningKey) -> vigil_vault_core::enroll::EnrollResponse {
        let token = run_ok(&["token", "create", "--data", &self.data]);
        let resp = self
            .http
            .post(self.url("/v1/enroll"))
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
        resp.json().await.unwrap()
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

/// Issue 13 point 3: a device claims four billion segments, or uploads a segment numbered far
/// ahead; the vault refuses both, and its gap reports (API, metrics, CLI) stay fast for the
/// largest claim it accepts. Point 9: a replayed (stale) heartbeat is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_claims_are_refused_and_gap_reports_stay_fast() {
    let rig = Rig::start();
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let mut sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
    let session = Uuid::new_v4();
    let first = next_segment(&mut sealer, &me.device_id.to_string(), session, 1);
    let (status, _) = rig.put_segment(&signing, session, 1, &first).await;
    assert_eq!(status, StatusCode::CREATED);

    // Four billion produced: refused before anything is stored.
    let claim = heartbeat(me.device_id, session, 4_000_000_000, vec![3_999_999_999]);
    let signed = SignedHeartbeat::sign(claim, &signing).unwrap();
    let (status, code) = rig.post("/v1/heartbeat", signed.as_bytes().to_vec()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "implausible")
    );

    // A segment numbered two million in a session holding #1: refused for its number.
    let far = next_segment(&mut sealer, &me.device_id.to_string(), session, 2_000_000);
    let (status, v) = rig.put_segment(&signing, session, 2_000_000, &far).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "bad_id", "{v}");
    assert!(v["detail"].as_str().unwrap().contains("ahead"), "{v}");

    // A replayed heartbeat (sent ten minutes ago) is stale.
    let mut old = heartbeat(me.device_id, session, 2, vec![2]);
    old.sent_at -= time::Duration::minutes(10);
    let signed = SignedHeartbeat::sign(old, &signing).unwrap();
    let (status, code) = rig.post("/v1/heartbeat", signed.as_bytes().to_vec()).await;
    assert_eq!((status, code.as_str()), (StatusCode::BAD_REQUEST, "stale"));

    // The largest claim accepted (a million segments ahead, with pending numbers spread over
    // it) leaves reports that are computed on ranges: each answers within a second.
    let pending: Vec<u64> = (2..=1_000_000).step_by(997).collect();
    let claim = heartbeat(me.device_id, session, 1_000_000, pending);
    let signed = SignedHeartbeat::sign(claim, &signing).unwrap();
    let (status, code) = rig.post("/v1/heartbeat", signed.as_bytes().to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{code}");

    let started = Instant::now();
    let resp = rig
        .http
        .get(rig.url(&format!("/v1/gaps?session={session}")))
        .bearer_auth(support::api_token(&rig.data, "ops", &["--role", "admin"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let gaps: serde_json::Value = resp.json().await.unwrap();
    let api_time = started.elapsed();
    let s = &gaps["sessions"][0];
    assert_eq!(s["produced"], 1_000_000);
    assert_eq!(s["missing"], serde_json::json!([[2, 1_000_000]]));
    let count = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r[1].as_i64().unwrap() - r[0].as_i64().unwrap() + 1)
            .sum::<i64>()
    };
    assert_eq!(count(&s["in_transit"]), 1004, "{}", s["in_transit"]);
    assert_eq!(count(&s["in_transit"]) + count(&s["lost"]), 999_999);

    let started = Instant::now();
    let metrics = rig
        .http
        .get(rig.url("/metrics"))
        .bearer_auth(support::monitor_token(&rig.data))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics_time = started.elapsed();
    assert!(
        metrics.contains("vigil_vault_gap_segments_lost 998995"),
        "{metrics}"
    );

    let started = Instant::now();
    let cli = run_ok(&[
        "gaps",
        "--data",
        &rig.data,
        "--session",
        &session.to_string(),
    ]);
    let cli_time = started.elapsed();
    assert!(cli.contains("missing=2-1000000"), "{cli}");
    for (what, took) in [
        ("API", api_time),
        ("metrics", metrics_time),
        ("CLI", cli_time),
    ] {
        assert!(took < Duration::from_secs(1), "{what} took {took:?}");
    }
}

/// Issue 13 point 3: `/metrics` is not public; a monitoring account's API token reads it, and an
/// agent's or supervisor's cannot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_metrics_permission() {
    let rig = Rig::start();
    let resp = rig.http.get(rig.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    run_ok(&[
        "user",
        "add",
        "--data",
        &rig.data,
        "sam",
        "--role",
        "supervisor",
        "--team",
        "north",
    ]);
    let sam = run_ok(&["user", "token", "create", "--data", &rig.data, "sam"]);
    let resp = rig
        .http
        .get(rig.url("/metrics"))
        .bearer_auth(sam.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = rig
        .http
        .get(rig.url("/metrics"))
        .bearer_auth(support::monitor_token(&rig.data))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("vigil_vault_segments_stored_total 0"));
}

/// Issue 13 point 1: a team supervisor may not switch off payment masking, recording or
/// retention for their team (nor set fields the organization locks, nor add a site rule that
/// lets fields through); the refusal is 403 naming the fields, stores nothing and is audited.
/// A compliance officer can make the same change; unlocking is reserved too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_cannot_relax_masking_or_retention() {
    let rig = Rig::start();
    let sup = support::api_token(
        &rig.data,
        "sup",
        &["--role", "supervisor", "--team", "north"],
    );
    let cat = support::api_token(&rig.data, "cat", &["--role", "compliance"]);
    let admin = support::api_token(&rig.data, "ops", &["--role", "admin"]);
    let put = |token: &str, scope: &str, layer: serde_json::Value| {
        let request = rig
            .http
            .put(rig.url(&format!("/v1/policy/{scope}")))
            .bearer_auth(token)
            .json(&serde_json::json!({ "layer": layer, "reason": "probe" }));
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status();
            (
                status,
                resp.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let point_1 = serde_json::json!({
        "dtmf_masking": false, "focus_masking": false,
        "retention_voice_days": 1, "retention_screen_days": 1,
    });
    let (status, body) = put(&sup, "team:north", point_1.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "policy_locked");
    assert_eq!(
        body["fields"],
        serde_json::json!([
            "dtmf_masking",
            "focus_masking",
            "retention_voice_days",
            "retention_screen_days"
        ])
    );
    let stored = run_ok(&["policy", "history", "--data", &rig.data, "--team", "north"]);
    assert_eq!(stored.lines().count(), 1, "only the header: {stored}");
    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user:sup\tpolicy.change_refused\tteam:north: dtmf_masking")),
        "{audit}"
    );

    // Voice or screen off, and a site rule that leaves fields unmasked, are refused alike; a
    // tuning change is the supervisor's to make.
    for (layer, field) in [
        (serde_json::json!({"voice": false}), "voice"),
        (serde_json::json!({"screen": false}), "screen"),
        (
            serde_json::json!({"mask_rules": [{"id": "crm", "all": {"url": ["crm.example"]},
                "action": {"screen": "none", "audio": false, "tail_ms": 0}}]}),
            "mask_rules",
        ),
    ] {
        let (status, body) = put(&sup, "team:north", layer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["fields"], serde_json::json!([field]), "{body}");
    }
    let (status, body) = put(&sup, "team:north", serde_json::json!({"fps": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Compliance may.
    let (status, body) = put(&cat, "team:north", point_1).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The organization locks the frame rate: a team may no longer set it (a value kept from
    // before the lock is no change); only compliance may unlock.
    let (status, body) = put(
        &admin,
        "organization",
        serde_json::json!({"locked": ["fps"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = put(&sup, "team:north", serde_json::json!({"fps": 4})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["fields"], serde_json::json!(["fps"]));
    let (status, body) = put(&admin, "organization", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["fields"], serde_json::json!(["fps"]));
    let (status, body) = put(&cat, "organization", serde_json::json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Issue 13 point 2: the recorded person seals their segments to a key of their own as well
/// (so that they can read their spool), or to it alone (so that nobody else can): the vault
/// refuses both at ingest (422 `not_sealed_for_vault`), stores nothing, counts and audits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_not_sealed_for_the_vault_alone_are_refused() {
    let rig = Rig::start();
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let own = age::x25519::Identity::generate().to_public().to_string();
    let device = me.device_id.to_string();
    let session = Uuid::new_v4();
    let mut also_mine = me.recipients.clone();
    also_mine.push(own.clone());
    let pem = key.to_pkcs8_pem().unwrap();
    let same_key = || DeviceKey::from_pkcs8_pem(&pem, "test").unwrap();
    for (seq, recipients) in [(1u64, also_mine), (2, vec![own])] {
        let mut sealer = Sealer::new(Recipients::parse(&recipients).unwrap(), same_key());
        let segment = next_segment(&mut sealer, &device, session, seq);
        let (status, v) = rig.put_segment(&signing, session, seq, &segment).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "#{seq}");
        assert_eq!(v["error"], "not_sealed_for_vault", "{v}");
    }
    // Sealed for the vault alone, the same device's segment is stored.
    let mut sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
    let good = next_segment(&mut sealer, &device, session, 1);
    let (status, _) = rig.put_segment(&signing, session, 1, &good).await;
    assert_eq!(status, StatusCode::CREATED);

    let gaps = run_ok(&[
        "gaps",
        "--data",
        &rig.data,
        "--session",
        &session.to_string(),
    ]);
    assert!(gaps.contains("stored=1 last=1"), "{gaps}");
    let metrics = rig
        .http
        .get(rig.url("/metrics"))
        .bearer_auth(support::monitor_token(&rig.data))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vigil_vault_segments_rejected_total{cause=\"not_sealed_for_vault\"} 2"),
        "{metrics}"
    );
    let audit = run_ok(&["audit", "--data", &rig.data]);
    let refused: Vec<_> = audit
        .lines()
        .filter(|l| l.contains(&format!("device:{device}\tsegment.refused_sealing")))
        .collect();
    assert_eq!(refused.len(), 2, "{audit}");
    assert!(
        refused[0].contains("sealed to 2 X25519 recipients, the vault has 1"),
        "{audit}"
    );
    assert!(refused[1].contains("does not open it"), "{audit}");
}

/// Issue 13 point 6: 200 parallel wrong passwords against one account. The throttle counts
/// each attempt before checking it, so exactly the configured count is checked and the rest
/// are refused (429); then even the right password waits 30 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_lock_an_account_after_the_configured_count() {
    let rig = Rig::start();
    let password = "sue's own long password";
    support::add_user_with_password(&rig.data, "sue", &["--role", "supervisor"], password);
    let guesses: Vec<_> = (0..200)
        .map(|i| {
            let request = rig
                .http
                .get(rig.url("/v1/recordings"))
                .basic_auth("sue", Some(format!("guess {i}")));
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut answers = Vec::new();
    for guess in guesses {
        answers.push(guess.await.unwrap());
    }
    let checked = answers
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        checked,
        vigil_vault_core::api_auth::ACCOUNT_FREE_FAILURES as usize,
        "{answers:?}"
    );
    assert_eq!(checked + throttled, 200);
    let resp = rig
        .http
        .get(rig.url("/v1/recordings"))
        .basic_auth("sue", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 29 * 60, "{retry}");
}

/// Issue 13 point 6 (tried: the initial admin's one-time password worked indefinitely over
/// Basic): a one-time password serves only to change it; the change ends the account's other
/// sessions and revokes its API tokens, as a reset does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_passwords_only_change_themselves_and_a_change_revokes_the_rest() {
    let rig = Rig::start();
    let users = rig.url("/v1/users");
    let basic = |password: &str| {
        rig.http
            .get(users.clone())
            .basic_auth("admin", Some(password.to_owned()))
            .send()
    };
    let resp = basic(&rig.admin_password).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "password_change_required");
    let me = rig
        .http
        .get(rig.url("/v1/me"))
        .basic_auth("admin", Some(&rig.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    // A token made before the change stops working with it.
    let token = run_ok(&["user", "token", "create", "--data", &rig.data, "admin"]);
    let with_token = || {
        rig.http
            .get(users.clone())
            .bearer_auth(token.trim().to_owned())
            .send()
    };
    assert_eq!(with_token().await.unwrap().status(), StatusCode::OK);
    // Long but common, or the account's own name: refused, and nothing changes (§6).
    for guessable in ["Password12345", "qwertyuiop123", "adminadminadmin"] {
        let resp = rig
            .http
            .post(rig.url("/v1/password"))
            .basic_auth("admin", Some(&rig.admin_password))
            .json(&serde_json::json!({ "current": rig.admin_password, "new": guessable }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{guessable}");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["error"], "weak_password", "{guessable}: {v}");
    }
    let new = "the admin's own long password";
    support::change_password(
        &rig.http,
        &rig.served.base,
        "admin",
        &rig.admin_password,
        new,
    )
    .await;
    assert_eq!(basic(new).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        basic(&rig.admin_password).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_token().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Issue 13 points 8 and 10: reading the audit log or the agents' live state is itself
/// recorded; a heartbeat cannot flood the log or write control characters into it; the session
/// cookie is `__Host-`, a 401 invites no Basic dialog, and answers carry HSTS and `no-store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_recorded_and_browsers_are_not_invited_to_cache() {
    let rig = Rig::start();
    let password = "cat's own long password";
    support::add_user_with_password(&rig.data, "cat", &["--role", "compliance"], password);
    let login = rig
        .http
        .post(rig.url("/v1/login"))
        .json(&serde_json::json!({ "name": "cat", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-vigil_session="), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"));
    let anonymous = rig.http.get(rig.url("/v1/audit")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().get("www-authenticate").is_none());

    let cat = run_ok(&["user", "token", "create", "--data", &rig.data, "cat"]);
    let read = rig
        .http
        .get(rig.url("/v1/audit?action=login.success"))
        .bearer_auth(cat.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["cache-control"], "no-store");
    assert_eq!(
        read.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let sup = support::api_token(
        &rig.data,
        "sup",
        &["--role", "supervisor", "--team", "north"],
    );
    let agents = rig
        .http
        .get(rig.url("/v1/agents"))
        .bearer_auth(&sup)
        .send()
        .await
        .unwrap();
    assert_eq!(agents.status(), StatusCode::OK);

    // A heartbeat with twenty refusals full of control characters.
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let mut hb = heartbeat(me.device_id, Uuid::new_v4(), 0, vec![]);
    hb.agent = Some(vigil_proto::api::AgentReport {
        agent_version: "1".into(),
        policy_refusals: (0..20)
            .map(|i| vigil_proto::api::PolicyRefusal {
                at: time::OffsetDateTime::now_utc(),
                reason: format!("forged\n{i}\tuser:admin\tuser.create"),
            })
            .collect(),
        ..Default::default()
    });
    let signed = SignedHeartbeat::sign(hb, &signing).unwrap();
    let (status, code) = rig.post("/v1/heartbeat", signed.as_bytes().to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{code}");

    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user:cat\taudit.read\taction=login.success")),
        "{audit}"
    );
    assert!(
        audit
            .lines()
            .any(|l| l.contains("user:sup\tagents.read\tteams=north")),
        "{audit}"
    );
    let refusals: Vec<_> = audit
        .lines()
        .filter(|l| l.contains("policy.refused_by_agent"))
        .collect();
    assert_eq!(refusals.len(), 4, "three one by one, one summary: {audit}");
    assert!(refusals[3].contains("17 more policy refusals"), "{audit}");
    assert!(
        !audit
            .lines()
            .any(|l| l.starts_with("0\tuser:admin") || l.contains("forged\n")),
        "no forged line: {audit}"
    );
}

/// Issue 13 point 4: a client that is no enrolled device is refused before the vault reads a
/// byte of its body (no device signature header: 401 at once, however much it announces); a
/// device that announces an upload and then trickles nothing is cut at the request deadline
/// (408, connection closed), so neither can hold connections and buffers for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_authenticated_before_their_bodies_and_stalls_are_cut() {
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap().to_owned();
    run_ok(&["init", "--data", &d, "--host", "127.0.0.1"]);
    let served = Served::start_with(&data, 1 << 20, &["--request-timeout", "2"]);
    let ca = fs::read(data.join("tls/ca.pem")).unwrap();
    let http = pinned_client(&ca);
    let token = run_ok(&["token", "create", "--data", &d]);
    let key = SigningKey::from_bytes(&[77; 32]);
    let enrolled = http
        .post(format!("{}/v1/enroll", served.base))
        .json(&serde_json::json!({
            "token": token.trim(),
            "device_public_key": hex::encode(key.verifying_key().as_bytes()),
            "hostname": "desk",
            "user": "agent1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), StatusCode::OK);

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let addr = served.base.strip_prefix("https://").unwrap().to_owned();
    // Sends a request head and the first bytes of a body, then nothing: the answer and when.
    let stall = |extra_header: String, session: Uuid| {
        let (config, addr) = (config.clone(), addr.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let connector = tokio_rustls::TlsConnector::from(config);
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            let head = format!(
                "PUT /v1/segments/{session}/1 HTTP/1.1\r\nHost: {addr}\r\n{extra_header}\
                 Content-Length: 100000\r\n\r\nVGS1"
            );
            tls.write_all(head.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            let started = Instant::now();
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut answer)).await;
            assert!(
                read.is_ok(),
                "the vault kept the stalled connection open for 20 s"
            );
            (
                String::from_utf8_lossy(&answer).into_owned(),
                started.elapsed(),
            )
        }
    };

    // Nobody's upload: refused at once, the body never read.
    let (text, waited) = stall(String::new(), Uuid::new_v4()).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("device_signature_required"), "{text}");
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    // A stranger's signature: refused at once too.
    let session = Uuid::new_v4();
    let mut body = b"VGS1".to_vec();
    body.resize(100_000, 0);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let stranger = SigningKey::from_bytes(&[78; 32]);
    let header = |key: &SigningKey| {
        let signature = vigil_proto::upload_auth::sign_upload(key, session, 1, now, &body);
        format!(
            "{}: {signature}\r\n",
            vigil_proto::upload_auth::UPLOAD_AUTH_HEADER
        )
    };
    let (text, waited) = stall(header(&stranger), session).await;
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("unknown_device"),
        "{text}"
    );
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    // The enrolled device's stalled upload: cut at the 2-s deadline.
    let (text, waited) = stall(header(&key), session).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
}

/// Issue 13 point 12 (part): the server certificate is renewed under the same CA (recorded
/// expiry under 398 days, audited), and a client pinning the CA keeps connecting to the restarted
/// server, which serves the new certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_certificate_renews_under_the_pinned_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    run_ok(&["init", "--data", d, "--host", "127.0.0.1"]);
    let ca = fs::read(data.join("tls/ca.pem")).unwrap();
    let http = pinned_client(&ca);
    let first = fs::read_to_string(data.join("tls/server.pem")).unwrap();
    let not_after = |text: &str| {
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let first_expiry = not_after(&fs::read_to_string(data.join("tls/server.not_after")).unwrap());
    let days = (first_expiry - time::OffsetDateTime::now_utc()).whole_days();
    assert!((396..=397).contains(&days), "{days}");

    std::thread::sleep(Duration::from_millis(1100));
    let out = run_ok(&["keys", "renew-tls", "--data", d]);
    assert!(out.contains("server certificate renewed"), "{out}");
    let second = fs::read_to_string(data.join("tls/server.pem")).unwrap();
    assert_ne!(first, second);
    assert_eq!(
        fs::read(data.join("tls/ca.pem")).unwrap(),
        ca,
        "the CA stays"
    );
    assert!(
        not_after(&fs::read_to_string(data.join("tls/server.not_after")).unwrap()) > first_expiry
    );

    let served = Served::start(&data, 1 << 20);
    let resp = http
        .get(format!("{}/health", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let audit = run_ok(&["audit", "--data", d]);
    assert!(
        audit.contains("\tkeys.renew_tls\tserver certificate until"),
        "{audit}"
    );
}

/// Issue 13 point 5: a device whose clock was set back (its manifests say 1970) must not make
/// its segments expire at the next sweep or fall outside a hold on the days they arrived.
/// They count from their arrival less `[retention] clock_tolerance_days` (7 by default); the
/// manifest keeps the device's claim and the correction is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_device_clock_neither_expires_segments_early_nor_escapes_holds() {
    const DAY: i64 = 86_400;
    let rig = Rig::start();
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let device = me.device_id.to_string();
    let session = Uuid::new_v4();
    let mut sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
    // `next_segment` dates its manifest 1970-01-01: the device's clock says so.
    let segment = next_segment(&mut sealer, &device, session, 1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (status, _) = rig.put_segment(&signing, session, 1, &segment).await;
    assert_eq!(status, StatusCode::CREATED);

    let vault = vigil_vault_core::Vault::open(
        std::path::Path::new(&rig.data),
        &vigil_vault_core::secrets::VaultKey::new(support::VAULT_KEY).unwrap(),
    )
    .unwrap();
    let id = segment.manifest.document.segment_id;
    let life = vault.store().segment_lifecycle(id).unwrap().unwrap();
    let counted = life.segment.recorded_at;
    assert!(
        (now - 7 * DAY - 5..=now - 7 * DAY + 60).contains(&counted),
        "counted from {counted}, arrival {now}"
    );
    let terms = life.terms.unwrap();
    assert_eq!(terms.screen_expires_at, counted + 180 * DAY);

    // Today's sweep leaves it (1970 + 180 days is long past).
    let report = vigil_vault_core::retention::sweep(&vault, now).unwrap();
    assert_eq!((report.screen_deleted, report.voice_deleted), (0, 0));
    // A hold on the past eight days covers it, ten years on as well.
    run_ok(&[
        "hold",
        "add",
        "--data",
        &rig.data,
        "--from",
        &(now - 8 * DAY).to_string(),
        "--to",
        &(now + 60).to_string(),
        "--case",
        "CASE-9",
        "--reason",
        "complaint about last week's calls",
    ]);
    let later = vigil_vault_core::retention::sweep(&vault, now + 3650 * DAY).unwrap();
    assert_eq!((later.screen_deleted, later.held), (0, 1), "{later:?}");

    let audit = run_ok(&["audit", "--data", &rig.data]);
    let noted: Vec<_> = audit
        .lines()
        .filter(|l| l.contains(&format!("device:{device}\tsegment.clock_corrected")))
        .collect();
    assert_eq!(noted.len(), 1, "{audit}");
    assert!(noted[0].contains("device clock off by"), "{audit}");
}

/// Issue 13 point 7: an admin alone cannot make an account that hears recordings (and then use
/// it). Over the API the account is created disabled with a grant request; the admin cannot
/// approve their own request; a second admin can, and only then does the account log in. A
/// role change that gives media access waits the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_admin_alone_cannot_grant_access_to_recordings() {
    let rig = Rig::start();
    let pw = "the first admin's own passphrase";
    support::change_password(
        &rig.http,
        &rig.served.base,
        "admin",
        &rig.admin_password,
        pw,
    )
    .await;
    let as_admin = |name: &str, password: &str, req: reqwest::RequestBuilder| {
        req.basic_auth(name, Some(password.to_owned())).send()
    };
    let created = as_admin(
        "admin",
        pw,
        rig.http
            .post(rig.url("/v1/users"))
            .json(&serde_json::json!({
                "name": "cat2", "role": "compliance", "password": "cat2's long passphrase"
            })),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), StatusCode::ACCEPTED);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(
        (created["pending"].as_bool(), created["disabled"].as_bool()),
        (Some(true), Some(true))
    );
    let request = created["request"].as_i64().unwrap();
    let login = |name: &'static str, password: &'static str| {
        rig.http
            .post(rig.url("/v1/login"))
            .json(&serde_json::json!({ "name": name, "password": password }))
            .send()
    };
    assert_eq!(
        login("cat2", "cat2's long passphrase")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // An existing analyst promoted to compliance: requested, not applied.
    support::add_user_with_password(
        &rig.data,
        "ann2",
        &["--role", "qa_analyst"],
        "ann2's long passphrase",
    );
    let promoted = as_admin(
        "admin",
        pw,
        rig.http
            .patch(rig.url("/v1/users/ann2"))
            .json(&serde_json::json!({ "role": "compliance" })),
    )
    .await
    .unwrap();
    assert_eq!(promoted.status(), StatusCode::ACCEPTED);
    let promoted: serde_json::Value = promoted.json().await.unwrap();
    assert_eq!(
        promoted["role"], "qa_analyst",
        "the role changed without a second person"
    );

    // The requester cannot approve.
    let own = as_admin(
        "admin",
        pw,
        rig.http
            .post(rig.url(&format!("/v1/grants/{request}/approve"))),
    )
    .await
    .unwrap();
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    let own: serde_json::Value = own.json().await.unwrap();
    assert_eq!(own["error"], "self_approval");
    assert_eq!(
        login("cat2", "cat2's long passphrase")
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // A second admin (made by IT with the data folder) sees both requests and approves one.
    support::add_user_with_password(
        &rig.data,
        "adm2",
        &["--role", "admin"],
        "adm2's long passphrase",
    );
    let list: serde_json::Value = as_admin(
        "adm2",
        "adm2's long passphrase",
        rig.http.get(rig.url("/v1/grants")),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let names: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["grant"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cat2", "ann2"], "{list}");
    let approved = as_admin(
        "adm2",
        "adm2's long passphrase",
        rig.http
            .post(rig.url(&format!("/v1/grants/{request}/approve"))),
    )
    .await
    .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    assert_eq!(
        login("cat2", "cat2's long passphrase")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let again = as_admin(
        "adm2",
        "adm2's long passphrase",
        rig.http
            .post(rig.url(&format!("/v1/grants/{request}/approve"))),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);

    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(
        audit.contains("user:admin\tuser.grant_requested\tcat2"),
        "{audit}"
    );
    assert!(
        audit.contains(&format!(
            "user:adm2\tuser.grant_approved\trequest:{request}"
        )),
        "{audit}"
    );
}

/// Issue 13 point 8: someone who can write the database rewrites an audit record and the whole
/// hash chain after it, so the chain alone still holds. The server's signed anchors in the blob
/// store (receipt key, which the database does not hold) catch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_rewritten_whole_in_the_database_is_caught_by_signed_anchors() {
    let rig = Rig::start_with(&format!(
        "{}\n[audit]\nanchor_seconds = 1\n",
        support::NO_SECOND_FACTOR
    ));
    for n in 0..3 {
        run_ok(&[
            "token",
            "create",
            "--data",
            &rig.data,
            "--reason",
            &format!("desk {n}"),
        ]);
    }
    // Wait for an anchor of the head (the server writes one a second).
    let anchors = std::path::Path::new(&rig.data)
        .join("blobs")
        .join(Uuid::nil().to_string());
    let deadline = Instant::now() + Duration::from_secs(20);
    let anchored = || {
        fs::read_dir(&anchors)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("audit-anchor-"))
                    .count()
            })
            .unwrap_or(0)
    };
    while anchored() == 0 {
        assert!(Instant::now() < deadline, "no anchor written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let verified = support::vault(&["audit", "verify", "--data", &rig.data])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    assert!(String::from_utf8_lossy(&verified.stderr).contains("signed anchor(s) hold"));

    // The intruder: drops the append-only triggers, rewrites record 1's reason and re-chains
    // every record after it, as the vault would have.
    let db = rusqlite::Connection::open(std::path::Path::new(&rig.data).join("metadata.sqlite"))
        .unwrap();
    db.execute_batch("DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;")
        .unwrap();
    db.execute(
        "UPDATE audit_log SET reason = 'nothing happened' WHERE seq = 1",
        [],
    )
    .unwrap();
    use vigil_vault_store::metadata::{AuditDraft, AuditRecord};
    let rows: Vec<(i64, AuditDraft)> = db
        .prepare("SELECT seq, at, actor, action, target, reason FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            let draft = AuditDraft {
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                reason: r.get(5)?,
            };
            Ok((r.get(0)?, draft))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = AuditRecord::GENESIS.to_owned();
    for (seq, draft) in rows {
        let sha = AuditRecord::chain_hash(seq, &prev, &draft);
        db.execute(
            "UPDATE audit_log SET prev_sha256 = ?1, sha256 = ?2 WHERE seq = ?3",
            rusqlite::params![prev, sha, seq],
        )
        .unwrap();
        prev = sha;
    }
    drop(db);

    let caught = support::vault(&["audit", "verify", "--data", &rig.data])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&caught.stderr);
    assert!(
        !caught.status.success(),
        "a rewritten log verified: {stderr}"
    );
    assert!(
        stderr.contains("signed anchor") && stderr.contains("the log was rewritten"),
        "{stderr}"
    );
}

/// Issue 13 point 6, MFA (PCI DSS 8.4.2): an admin's password alone no longer opens the
/// vault. Basic is refused to the account; its session can only enroll a TOTP factor; after
/// that a login needs a code, a wrong code is a failed attempt, and a code opens one login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_alone_does_not_open_an_account_that_can_manage_the_vault() {
    let rig = Rig::start_with("");
    let login = |password: String, totp: Option<String>| {
        let mut body = serde_json::json!({ "name": "admin", "password": password });
        if let Some(code) = totp {
            body["totp"] = code.into();
        }
        rig.http.post(rig.url("/v1/login")).json(&body).send()
    };
    let session = |resp: &reqwest::Response| {
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    };
    // The one-time password is changed in a session (Basic is refused to the account).
    let first = login(rig.admin_password.clone(), None).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = session(&first);
    let me: serde_json::Value = first.json().await.unwrap();
    assert_eq!(me["mfa_enrollment_required"], true);
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();
    let post = |path: &str, body: serde_json::Value| {
        rig.http
            .post(rig.url(path))
            .header("cookie", cookie.clone())
            .header("x-csrf-token", csrf.clone())
            .json(&body)
            .send()
    };
    let pw = "the first admin's own passphrase";
    let changed = post(
        "/v1/password",
        serde_json::json!({ "current": rig.admin_password, "new": pw }),
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let basic = rig
        .http
        .get(rig.url("/v1/users"))
        .basic_auth("admin", Some(pw))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::FORBIDDEN);
    let v: serde_json::Value = basic.json().await.unwrap();
    assert_eq!(v["error"], "mfa_required");
    let users = || {
        rig.http
            .get(rig.url("/v1/users"))
            .header("cookie", cookie.clone())
            .send()
    };
    let held = users().await.unwrap();
    assert_eq!(held.status(), StatusCode::FORBIDDEN);
    let v: serde_json::Value = held.json().await.unwrap();
    assert_eq!(v["error"], "mfa_enrollment_required");

    // Enrollment: a secret, confirmed by a first code.
    let factor: serde_json::Value = post("/v1/mfa/totp", serde_json::json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = factor["secret"].as_str().unwrap().to_owned();
    assert!(factor["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Vigil:admin"));
    let now = || time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let code = |at: u64| vigil_vault_core::mfa::code_for(&secret, "admin", at).unwrap();
    let wrong = if code(now()) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = post("/v1/mfa/totp/confirm", serde_json::json!({ "code": wrong }))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let confirmed = post(
        "/v1/mfa/totp/confirm",
        serde_json::json!({ "code": code(now()) }),
    )
    .await
    .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(users().await.unwrap().status(), StatusCode::OK);

    // A login now needs a code; a wrong one is refused; a code opens one login only.
    let no_code = login(pw.to_owned(), None).await.unwrap();
    assert_eq!(no_code.status(), StatusCode::UNAUTHORIZED);
    let v: serde_json::Value = no_code.json().await.unwrap();
    assert_eq!(v["error"], "totp_required");
    let bad = login(pw.to_owned(), Some(wrong.to_owned())).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let next = code(now() + 30);
    let good = login(pw.to_owned(), Some(next.clone())).await.unwrap();
    assert_eq!(good.status(), StatusCode::OK);
    let replayed = login(pw.to_owned(), Some(next)).await.unwrap();
    assert_eq!(
        replayed.status(),
        StatusCode::UNAUTHORIZED,
        "a code opened two logins"
    );

    let audit = run_ok(&["audit", "--data", &rig.data]);
    assert!(audit.contains("user.mfa_enrolled"), "{audit}");
    assert!(audit.contains("wrong one-time code"), "{audit}");
}

/// Issue 13 point 4: one device cannot flood the vault with uploads. Past its burst it gets
/// 429 with Retry-After (agents retry later, nothing is lost), while another device uploads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_is_held_to_its_upload_rate_and_others_are_not() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap().to_owned();
    run_ok(&["init", "--data", &d, "--host", "127.0.0.1"]);
    let served = Served::start_with(
        &data,
        1 << 20,
        &[
            "--device-uploads-per-second",
            "0.2",
            "--device-upload-burst",
            "2",
        ],
    );
    let http = pinned_client(&fs::read(data.join("tls/ca.pem")).unwrap());
    let enroll = |key: SigningKey| {
        let (http, base, d) = (http.clone(), served.base.clone(), d.clone());
        async move {
            let token = run_ok(&["token", "create", "--data", &d]);
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
            assert_eq!(resp.status(), StatusCode::OK);
            resp.json::<vigil_vault_core::enroll::EnrollResponse>()
                .await
                .unwrap()
        }
    };
    let upload = |key: SigningKey, segment: support::Segment, session: Uuid, seq: u64| {
        let (http, base) = (http.clone(), served.base.clone());
        async move {
            let req = http.put(format!("{base}/v1/segments/{session}/{seq}"));
            support::signed_upload(req, &key, session, seq, segment.body())
                .send()
                .await
                .unwrap()
        }
    };
    let mut devices = Vec::new();
    for n in [1u8, 2] {
        let key = DeviceKey::generate();
        let signing = key.signing_key().clone();
        let me = enroll(signing.clone()).await;
        let sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
        devices.push((signing, sealer, me.device_id.to_string(), Uuid::new_v4(), n));
    }
    let (busy, calm) = devices.split_at_mut(1);
    let (key, sealer, id, session, _) = &mut busy[0];
    for seq in 1..=2 {
        let segment = next_segment(sealer, id, *session, seq);
        let resp = upload(key.clone(), segment, *session, seq).await;
        assert_eq!(
            resp.status(),
            StatusCode::CREATED,
            "#{seq} within the burst"
        );
    }
    let third = next_segment(sealer, id, *session, 3);
    let resp = upload(key.clone(), third, *session, 3).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&wait), "retry after {wait} s");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited");
    // The other device is not held back.
    let (key, sealer, id, session, _) = &mut calm[0];
    let segment = next_segment(sealer, id, *session, 1);
    let resp = upload(key.clone(), segment, *session, 1).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

/// Issue 13 point 11 (part): a crash between a blob's commit and its row leaves files no row
/// refers to (nothing would ever expire, hold or export them), and a crash between staging and
/// commit leaves staged files. The sweep removes them once an hour old, audited first, and
/// never touches a stored segment or an upload in progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_orphaned_by_a_crash_are_swept_and_stored_segments_are_not() {
    let rig = Rig::start();
    let key = DeviceKey::generate();
    let signing = key.signing_key().clone();
    let me = rig.enroll(&signing).await;
    let mut sealer = Sealer::new(Recipients::parse(&me.recipients).unwrap(), key);
    let session = Uuid::new_v4();
    let stored = next_segment(&mut sealer, &me.device_id.to_string(), session, 1);
    let (status, _) = rig.put_segment(&signing, session, 1, &stored).await;
    assert_eq!(status, StatusCode::CREATED);

    let vault = vigil_vault_core::Vault::open(
        std::path::Path::new(&rig.data),
        &vigil_vault_core::secrets::VaultKey::new(support::VAULT_KEY).unwrap(),
    )
    .unwrap();
    // The crash: #2's files committed, its row never written; #3 staged, never committed.
    let second = next_segment(&mut sealer, &me.device_id.to_string(), session, 2);
    let files = [
        (
            "000002.manifest.json".to_owned(),
            second.manifest.as_bytes(),
        ),
        ("000002.voice.age".to_owned(), second.voice.as_slice()),
    ];
    let staged = vault.blobs().stage(session, &files).unwrap();
    vault.blobs().commit(staged).unwrap();
    let _never_committed = vault
        .blobs()
        .stage(session, &[("000003.voice.age".to_owned(), b"v".as_slice())])
        .unwrap();
    let staging_files = || walk(&std::path::Path::new(&rig.data).join("staging"));
    assert_eq!(staging_files(), 1);

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let young = vigil_vault_core::orphans::sweep_orphans(&vault, now, "test").unwrap();
    assert_eq!(
        young,
        Default::default(),
        "files younger than an hour are left alone"
    );
    let later = vigil_vault_core::orphans::sweep_orphans(&vault, now + 7200, "test").unwrap();
    assert_eq!(later.files.len(), 2, "{later:?}");
    assert_eq!(later.staged, 1);
    let left = vault.blobs().list(session).unwrap();
    assert_eq!(
        left,
        [
            "000001.manifest.json",
            "000001.screen.age",
            "000001.voice.age"
        ],
        "the stored segment keeps its files"
    );
    assert_eq!(staging_files(), 0);
    let audit = run_ok(&["audit", "--data", &rig.data]);
    let line = audit
        .lines()
        .find(|l| l.contains("\tblobs.orphans_removed\t"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        line.contains(&format!("{session}/000002.voice.age")),
        "{line}"
    );
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
