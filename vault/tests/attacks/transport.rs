//! Attacks on the transport: bodies from strangers, stalled uploads, one device flooding, the
//! server certificate's expiry.

use super::*;

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
    let served = Served::start_with(
        &data,
        1 << 20,
        &["--request-timeout", "2", "--device-uploads-in-flight", "2"],
    );
    let ca = fs::read(data.join("tls/ca.pem")).unwrap();
    let http = pinned_client(&ca);
    let key = SigningKey::from_bytes(&[77; 32]);
    support::enroll_device(&http, &served.base, &d, &key).await;

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
    // The enrolled device's stalled uploads: cut at the 2-s deadline; while two are held, a
    // third is refused at once (one device holds at most its in-flight bodies in memory).
    let first = tokio::spawn(stall(header(&key), session));
    let second = tokio::spawn(stall(header(&key), session));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // What has arrived of the held bodies is in files under incoming/, not in memory.
    let incoming = || -> Vec<u64> {
        let mut sizes: Vec<u64> = fs::read_dir(data.join("incoming"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .collect();
        sizes.sort();
        sizes
    };
    assert_eq!(incoming(), vec![4, 4], "the two held bodies so far");
    let (text, waited) = stall(header(&key), session).await;
    assert!(
        text.starts_with("HTTP/1.1 429") && text.contains("rate_limited"),
        "{text}"
    );
    assert!(waited < Duration::from_millis(1500), "{waited:?}");
    for held in [first, second] {
        let (text, waited) = held.await.unwrap();
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(text.contains("request_timeout"), "{text}");
        assert!(
            waited >= Duration::from_millis(1000) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
    }
    assert_eq!(incoming(), Vec::<u64>::new(), "cut uploads leave no file");
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
        async move { support::enroll_device(&http, &base, &d, &key).await }
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
