//! One storage suite on every backend (brief §6): the metadata conformance suite on SQLite and
//! PostgreSQL, the blob conformance suite on the local folder and S3, and the real
//! `vigil-vault serve` over TLS on all four combinations, checked in the backends themselves
//! (rows in the database, bytes in the bucket's folder). PostgreSQL 15 and s3s-fs are started
//! by `support/backends.rs`; without them these tests fail (see `scripts/install-deps.sh`).

#[allow(dead_code)]
#[path = "support/backends.rs"]
mod backends;
#[allow(dead_code)]
mod support;
#[path = "storage_backends/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use backends::{off_runtime, Backends, Blobs, Meta, PgServer, S3_SECRET};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::StatusCode;
use support::{next_segment, pinned_client};
use uuid::Uuid;
use vigil_proto::frame::CONTENT_TYPE;
use vigil_seal::{DeviceKey, Recipients, Sealer};
use vigil_vault_core::enroll::EnrollResponse;
use vigil_vault_store::conformance;
use vigil_vault_store::metadata::{
    AccessStore, AuditDraft, MetadataStore, PostgresStore, RecordingFilter, SegmentFilter,
};

// ---- metadata conformance -------------------------------------------------------------------

/// Runs one conformance function on a fresh store of the backend (off the async runtime).
fn on_fresh_store(make: fn() -> Backends, check: fn(&dyn MetadataStore)) {
    let backends = make();
    let dir = tempfile::tempdir().unwrap();
    let store = backends.metadata_store(dir.path());
    off_runtime(move || check(store.as_ref()));
}

fn metadata_suite(meta: fn() -> Backends) {
    on_fresh_store(meta, conformance::tokens_are_single_use_and_expire);
    on_fresh_store(meta, conformance::segments_round_trip);
    on_fresh_store(meta, conformance::segments_are_listed_by_filter);
    on_fresh_store(meta, conformance::session_reports_replace_each_other);
    on_fresh_store(meta, conformance::agent_states_replace_each_other);
    on_fresh_store(meta, conformance::audit_log_is_chained);
    on_fresh_store(meta, conformance::concurrent_inserts_commit_independently);
    on_fresh_store(meta, conformance::lifecycle::lifecycle_terms_and_deletions);
    on_fresh_store(meta, conformance::lifecycle::lifecycle_holds_and_tombstones);
    on_fresh_store(meta, conformance::access::accounts_sessions_and_tokens);
    on_fresh_store(meta, conformance::access::recordings_are_searched);
    on_fresh_store(meta, conformance::access::audit_is_queried);
    on_fresh_store(meta, conformance::access::media_links_expire);
    on_fresh_store(meta, conformance::access::login_failures_count_and_lock);
    on_fresh_store(meta, conformance::devices_are_rekeyed);
}

#[test]
fn metadata_conformance_sqlite() {
    metadata_suite(|| Backends::new(Meta::Sqlite, Blobs::Local));
}

#[test]
fn metadata_conformance_postgres() {
    metadata_suite(|| Backends::new(Meta::Postgres, Blobs::Local));
}

/// A PostgreSQL database made before accounts had teams and before sessions, API tokens and
/// the recordings index existed is upgraded when a vault opens it, keeping its rows.
#[test]
fn postgres_database_of_an_older_schema_is_upgraded() {
    let server = PgServer::shared();
    let url = server.create_database();
    off_runtime(move || {
        let schema = include_str!("../store/src/metadata/schema_pg.sql");
        let old = &schema[..schema
            .find("-- Access control and recordings search")
            .expect("marker in schema_pg.sql")];
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(old).unwrap();
        client
            .batch_execute(
                "INSERT INTO vigil_schema (version) VALUES (1); \
                 INSERT INTO users VALUES ('admin', 'admin', 'h', true, 0);",
            )
            .unwrap();
        for _ in 0..2 {
            let store = PostgresStore::open(&url, 2).unwrap();
            let admin = store.account("admin").unwrap().unwrap();
            assert_eq!(admin.user.role, "admin");
            assert!(store.set_user_teams("admin", &["north".into()]).unwrap());
            assert_eq!(store.api_tokens().unwrap(), vec![]);
        }
    });
}

/// In PostgreSQL too the audit log is append-only (a trigger raises), and concurrent appends
/// from several connections and threads still form one unbroken chain.
#[test]
fn postgres_audit_log_is_append_only_and_serialized() {
    let server = PgServer::shared();
    let url = server.create_database();
    off_runtime(move || {
        let store = std::sync::Arc::new(PostgresStore::open(&url, 4).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..15 {
                        store
                            .append_audit(&AuditDraft {
                                at: i,
                                actor: format!("thread:{t}"),
                                action: "test.append".into(),
                                target: None,
                                reason: Some("concurrency".into()),
                                ..Default::default()
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let records = vigil_vault_core::audit::records(store.as_ref()).unwrap();
        assert_eq!(records.len(), 60);
        assert!(vigil_vault_core::audit::verify_chain(&records).is_empty());
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        for edit in [
            "UPDATE audit_log SET actor = 'x' WHERE seq = 1",
            "DELETE FROM audit_log WHERE seq = 60",
            "TRUNCATE audit_log",
        ] {
            let err = client.batch_execute(edit).unwrap_err();
            assert!(
                err.to_string().contains("append-only")
                    || format!("{err:?}").contains("append-only"),
                "{edit}: {err:?}"
            );
        }
        let count: i64 = client
            .query_one("SELECT count(*) FROM audit_log", &[])
            .unwrap()
            .get(0);
        assert_eq!(count, 60);
    });
}

/// The server calls the store from tokio's blocking pool: the synchronous client must work
/// there (it runs its own runtime), and a store opened twice keeps its schema.
#[test]
fn postgres_store_works_from_blocking_tasks() {
    let server = PgServer::shared();
    let url = server.create_database();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let opened = url.clone();
        let store = tokio::task::spawn_blocking(move || PostgresStore::open(&opened, 2).unwrap())
            .await
            .unwrap();
        let store = std::sync::Arc::new(store);
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.ping().unwrap())
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let again = tokio::task::spawn_blocking(move || PostgresStore::open(&url, 1).map(|_| ()))
            .await
            .unwrap();
        again.unwrap();
    });
    drop(server);
}

// ---- blob conformance -----------------------------------------------------------------------

fn blob_suite(backends: Backends) {
    let dir = tempfile::tempdir().unwrap();
    let store = backends.blob_store(dir.path());
    vigil_vault_store::conformance::blobs::stage_commit_get(store.as_ref());
    vigil_vault_store::conformance::blobs::discard_leaves_nothing(store.as_ref());
    vigil_vault_store::conformance::blobs::bad_names_are_refused(store.as_ref());
    vigil_vault_store::conformance::blobs::delete_removes_one_file(store.as_ref());
    vigil_vault_store::conformance::blobs::sessions_times_and_staging_sweep(store.as_ref());
    // Nothing staged is left behind anywhere in the backend's storage.
    let leftovers: Vec<String> = backends
        .all_files(dir.path())
        .into_iter()
        .filter(|f| f.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn blob_conformance_local() {
    blob_suite(Backends::new(Meta::Sqlite, Blobs::Local));
}

#[test]
fn blob_conformance_s3() {
    blob_suite(Backends::new(Meta::Sqlite, Blobs::S3));
}

// ---- the real server on every combination ---------------------------------------------------

fn vault_cmd(backends: &Backends, args: &[&str]) -> std::process::Command {
    let mut cmd = support::vault(args);
    cmd.envs(backends.envs());
    cmd
}

fn run_ok(backends: &Backends, args: &[&str]) -> String {
    let out = vault_cmd(backends, args).output().unwrap();
    assert!(
        out.status.success(),
        "vigil-vault {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(backends: &Backends, data: &str) -> (Serving, String) {
    let mut child = vault_cmd(
        backends,
        &["serve", "--data", data, "--listen", "127.0.0.1:0"],
    )
    .stdout(Stdio::piped())
    // Read after exit (few lines at RUST_LOG=warn: the pipe cannot fill).
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (Serving(child), base)
}

/// Uploads `body` as `seq` of `session`, as the device of `key`.
async fn put(
    client: &reqwest::Client,
    key: &ed25519_dalek::SigningKey,
    (url, session, seq): (String, Uuid, usize),
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let req = client.put(url).header("content-type", CONTENT_TYPE);
    let resp = support::signed_upload(req, key, session, seq as u64, body)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

async fn ingest_end_to_end(backends: Backends) {
    let (meta, blobs) = (backends.meta, backends.blobs);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    let mut init = vec!["init", "--data", d];
    let extra = backends.init_args();
    init.extend(extra.iter().map(String::as_str));
    run_ok(&backends, &init);

    // vault.toml names the backends but holds no secret.
    let toml = std::fs::read_to_string(data.join("vault.toml")).unwrap();
    assert_eq!(
        toml.contains("[storage]"),
        !backends.init_args().is_empty(),
        "{toml}"
    );
    assert!(!toml.contains(S3_SECRET), "{toml}");
    support::add_to_vault_toml(&data, support::NO_SECOND_FACTOR);
    assert_eq!(data.join("metadata.sqlite").exists(), meta == Meta::Sqlite);

    let (served, base) = serve(&backends, d);
    let client = pinned_client(&std::fs::read(data.join("tls/ca.pem")).unwrap());
    let token = run_ok(&backends, &["token", "create", "--data", d]);
    let device = DeviceKey::generate();
    let resp = client
        .post(format!("{base}/v1/enroll"))
        .json(&serde_json::json!({
            "token": token.trim(),
            "device_public_key": B64.encode(device.signing_key().verifying_key().as_bytes()),
            "hostname": "desk-1",
            "user": "agent1",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let enrolled: EnrollResponse = resp.json().await.unwrap();
    let device_id = enrolled.device_id.to_string();

    let session = Uuid::new_v4();
    let signing = device.signing_key().clone();
    let mut sealer = Sealer::new(Recipients::parse(&enrolled.recipients).unwrap(), device);
    let segments: Vec<_> = (1..=3)
        .map(|seq| next_segment(&mut sealer, &device_id, session, seq))
        .collect();
    let url = |seq: usize| (format!("{base}/v1/segments/{session}/{seq}"), session, seq);
    let mut receipts = BTreeMap::new();
    // Out of order, then every one again: stored once, the same receipt each time.
    for seq in [2, 1, 3] {
        let (status, receipt) = put(&client, &signing, url(seq), segments[seq - 1].body()).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&receipt)
        );
        receipts.insert(seq, receipt);
    }
    for seq in 1..=3 {
        let (status, again) = put(&client, &signing, url(seq), segments[seq - 1].body()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, receipts[&seq]);
    }
    // A segment for position 4 that fails verification stores nothing.
    let mut forged = next_segment(&mut sealer, &device_id, session, 4);
    forged.voice.push(0);
    let (status, _) = put(&client, &signing, url(4), forged.body()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The bytes in the backend's own storage are the agent's, byte for byte.
    let root = backends.blob_root(&data).join(session.to_string());
    for (i, seg) in segments.iter().enumerate() {
        let seq = i + 1;
        for (name, bytes) in [
            (format!("{seq:06}.manifest.json"), seg.manifest.as_bytes()),
            (format!("{seq:06}.screen.age"), seg.screen.as_slice()),
            (format!("{seq:06}.voice.age"), seg.voice.as_slice()),
        ] {
            let stored = std::fs::read(root.join(&name))
                .unwrap_or_else(|e| panic!("{}: {e}", root.join(&name).display()));
            assert!(stored == bytes, "{name} differs");
        }
    }
    let files = backends.all_files(&data);
    assert!(
        !files.iter().any(|f| f.contains("000004.")),
        "refused segment visible: {files:?}"
    );
    if blobs == Blobs::S3 {
        assert!(!files.iter().any(|f| f.contains("staging")), "{files:?}");
        assert!(!data.join(format!("blobs/{session}")).exists());
    }
    let staged: Vec<String> = backends::walk_files(&data.join("staging"));
    assert!(staged.is_empty(), "{staged:?}");
    // The spool's offline verifier accepts the backend's tree as it is.
    let report = vigil_seal::verify_tree(&backends.blob_root(&data)).unwrap();
    assert_eq!(report.problems().count(), 0, "{report:?}");

    // The metadata rows are in the backend: exactly three, with the receipts sent.
    let store = backends.metadata_store(&data);
    let rows = off_runtime(move || {
        store
            .segments(&SegmentFilter {
                session: Some(session),
                ..Default::default()
            })
            .unwrap()
    });
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(row.receipt, receipts[&(row.sequence as usize)]);
    }
    if let Some(url) = backends.pg_inspect_url() {
        let url = url.to_owned();
        let count: i64 = off_runtime(move || {
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            c.query_one(
                "SELECT count(*) FROM segments WHERE session_id = $1",
                &[&session],
            )
            .unwrap()
            .get(0)
        });
        assert_eq!(count, 3);
    }
    // Search reads the backend's index; a compliance account plays a segment back through the
    // blob backend, decrypted.
    let store = backends.metadata_store(&data);
    let indexed = off_runtime(move || {
        store
            .recordings(&RecordingFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
    });
    assert_eq!(
        indexed.iter().map(|r| r.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let added = run_ok(
        &backends,
        &["user", "add", "--data", d, "cat", "--role", "compliance"],
    );
    let generated = added
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    // A generated password serves only to change it (issue 13).
    let password = "cat's own long password".to_owned();
    support::change_password(&client, &base, "cat", &generated, &password).await;
    let link: serde_json::Value = client
        .post(format!("{base}/v1/recordings/{session}/2/download"))
        .basic_auth("cat", Some(&password))
        .json(&serde_json::json!({ "kind": "screen", "reason": "backend test" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let media = client
        .get(format!("{base}{}", link["url"].as_str().unwrap()))
        .basic_auth("cat", Some(&password))
        .send()
        .await
        .unwrap();
    assert_eq!(media.status(), StatusCode::OK);
    assert_eq!(&media.bytes().await.unwrap()[..], b"screen 2");
    let gaps = run_ok(
        &backends,
        &["gaps", "--data", d, "--session", &session.to_string()],
    );
    assert!(gaps.contains("stored=3 last=3"), "{gaps}");

    // An evidence export reads the blobs back through the backend, and verifies offline.
    let out = tmp.path().join("export");
    let o = out.to_str().unwrap();
    let session_text = session.to_string();
    let printed = run_ok(
        &backends,
        &[
            "export",
            "--data",
            d,
            "--out",
            o,
            "--session",
            &session_text,
            "--reason",
            "test",
        ],
    );
    assert!(printed.contains("exported 3 segment(s)"), "{printed}");
    let exported =
        std::fs::read(out.join(format!("sessions/{session}/000002.screen.age"))).unwrap();
    assert!(exported == segments[1].screen, "exported blob differs");
    // The session is still open (no segment marks its end): a gap, allowed here.
    let verified = vault_cmd(&backends, &["verify", o, "--allow-gaps"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && text.contains("3 segment(s) with valid signatures"),
        "{text}"
    );

    // SIGTERM stops the server cleanly on every backend (dropping a PostgreSQL client or the
    // S3 runtime inside async code must not panic).
    let mut served = served;
    let pid = served.0.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = served.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut served.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "serve exited with {status}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sqlite_local() {
    ingest_end_to_end(Backends::new(Meta::Sqlite, Blobs::Local)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_sqlite_s3() {
    ingest_end_to_end(Backends::new(Meta::Sqlite, Blobs::S3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_postgres_local() {
    ingest_end_to_end(Backends::new(Meta::Postgres, Blobs::Local)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_postgres_s3() {
    ingest_end_to_end(Backends::new(Meta::Postgres, Blobs::S3)).await;
}
