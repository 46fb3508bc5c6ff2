//! Attacks through what devices send: huge claims, segments sealed to other keys, backdated
//! clocks, files orphaned by a crash.

use super::*;

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

    let vault = rig.library();
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

    let vault = rig.library();
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
