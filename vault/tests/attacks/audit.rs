//! Attacks on the record: anonymous metrics, unrecorded reads, a log rewritten whole.

use super::*;

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
    // The client claims another address; the vault has no trusted proxy, so it is ignored.
    let read = rig
        .http
        .get(rig.url("/v1/audit?action=login.success"))
        .bearer_auth(cat.trim())
        .header("user-agent", "audit-probe/1.0")
        .header("x-forwarded-for", "203.0.113.9")
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
        audit.lines().any(|l| l
            .contains("user:cat\taudit.read\taction=login.success\t-\t127.0.0.1\taudit-probe/1.0")),
        "{audit}"
    );
    // Every record names where it came from: an HTTP client's address (and its user agent when
    // it sent one), or the host's command line; only the vault's own background work has none.
    for line in audit.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 8, "{line}");
        if fields[2] != "vault" {
            assert_ne!(fields[6], "-", "no client address: {line}");
        }
        if fields[2].starts_with("cli:") {
            assert_eq!(
                (fields[6], fields[7].starts_with("vigil-vault/")),
                ("local", true),
                "{line}"
            );
        }
    }
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

/// Issue 13 point 8: behind a trusted reverse proxy the audit log names the address the proxy
/// forwarded, not the proxy; the spoofed entries a client writes to the left are not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
    let rig = Rig::start_with(&format!(
        "{}\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        support::NO_SECOND_FACTOR
    ));
    let cat = support::api_token(&rig.data, "cat", &["--role", "compliance"]);
    let read = rig
        .http
        .get(rig.url("/v1/audit"))
        .bearer_auth(&cat)
        .header("x-forwarded-for", "198.51.100.66, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let audit = run_ok(&["audit", "--data", &rig.data]);
    let line = audit
        .lines()
        .find(|l| l.contains("user:cat\taudit.read"))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(line.contains("\t203.0.113.9\t"), "{line}");
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
        .prepare(
            "SELECT seq, at, actor, action, target, reason, client_addr, user_agent \
             FROM audit_log ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| {
            let draft = AuditDraft {
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                reason: r.get(5)?,
                client_addr: r.get(6)?,
                user_agent: r.get(7)?,
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
