//! Retention, legal holds and range redaction (issue 5, part 6) on the real thing: segments
//! sealed by the agent's sealer and uploaded to the real `vigil-vault serve` over TLS, holds,
//! redaction, export and verify run by the real binary, the sweeper run through the library
//! "as of" later dates (and by the server itself on its period), judged by the files left in
//! the blob folder, `age -d`, the signed tombstones and the audit log.

#[allow(dead_code)]
#[path = "support/backends.rs"]
mod backends;
#[allow(dead_code)]
#[path = "support/deployment.rs"]
mod deployment;
#[allow(dead_code)]
mod support;

use std::fs;
use std::path::Path;

use backends::{off_runtime, Backends, Blobs, Meta};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use deployment::{export_and_verify, names, rfc3339, walk, Deployment, DAY};
use ed25519_dalek::VerifyingKey;
use time::OffsetDateTime;
use vigil_proto::tombstone::SignedTombstone;
use vigil_vault_core::retention::sweep;
use vigil_vault_store::metadata::LifecycleStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_holds_and_redaction() {
    let dep = Deployment::start("", Backends::new(Meta::Sqlite, Blobs::Local)).await;
    let d = dep.d().to_owned();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // Recorded 200 days ago: past the default screen retention (180 days), within voice's
    // (2555 days).
    let base = now - 200 * DAY;
    let (a, a_segments) = dep.record(base, 3).await;
    let (b, _) = dep.record(base + 3600, 2).await;
    let c0 = base + 7200;
    let (c, c_segments) = dep.record(c0, 4).await;

    // Terms fixed at ingest from the policy in force (the default, version 0).
    let lib = dep.library();
    let c1 = c_segments[0].manifest.document.segment_id;
    let life = lib.store().segment_lifecycle(c1).unwrap().unwrap();
    let terms = life.terms.expect("terms fixed at ingest");
    assert_eq!(terms.policy_version, 0);
    assert_eq!(terms.ended_at, c0 + 10);
    assert_eq!(terms.voice_expires_at, c0 + 2555 * DAY);
    assert_eq!(terms.screen_expires_at, c0 + 180 * DAY);

    // A legal hold on session B (the case and reason are kept and audited).
    let hold_b = dep.run_ok(&[
        "hold",
        "add",
        "--data",
        &d,
        "--case",
        "CASE-17",
        "--session",
        &b.to_string(),
        "--reason",
        "litigation: complaint 17",
    ]);
    let hold_b = hold_b.trim().to_owned();
    let listed = dep.run_ok(&["hold", "list", "--data", &d]);
    assert!(
        listed.contains(&hold_b) && listed.contains("CASE-17"),
        "{listed}"
    );
    let refused = dep.run(&["hold", "add", "--data", &d, "--case", "X", "--reason", "r"]);
    assert!(!refused.status.success(), "a hold without scope is refused");

    // A hold blocks deletion, redaction included: nothing of B is destroyed.
    let blocked = dep.run(&[
        "redact",
        "--data",
        &d,
        "--session",
        &b.to_string(),
        "--from",
        &rfc3339(base),
        "--to",
        &rfc3339(now),
        "--case",
        "PCI-2026-3",
        "--reason",
        "card data",
    ]);
    assert!(!blocked.status.success());
    assert!(
        String::from_utf8_lossy(&blocked.stderr).contains(&format!("legal hold {hold_b}")),
        "{}",
        String::from_utf8_lossy(&blocked.stderr)
    );
    assert_eq!(dep.files(b).len(), 6);

    // Range redaction in session C: [c0+12, c0+25) overlaps #2 [10,20) and #3 [20,30).
    let redacted = dep.run_ok(&[
        "redact",
        "--data",
        &d,
        "--session",
        &c.to_string(),
        "--from",
        &rfc3339(c0 + 12),
        "--to",
        &rfc3339(c0 + 25),
        "--case",
        "PCI-2026-3",
        "--reason",
        "card number read out on the call",
    ]);
    assert!(redacted.contains("2 segment(s) redacted"), "{redacted}");
    let mut expected = names(1, &["manifest.json", "screen.age", "voice.age"]);
    expected.extend(names(2, &["manifest.json"]));
    expected.extend(names(3, &["manifest.json"]));
    expected.extend(names(4, &["manifest.json", "screen.age", "voice.age"]));
    assert_eq!(dep.files(c), expected);
    // No copy of the redacted media is left anywhere in the data folder, so nothing can
    // decrypt it, while an untouched blob still decrypts with `age -d`.
    let mut all = Vec::new();
    walk(&dep.data, &mut all);
    for seg in &c_segments[1..3] {
        for sealed in [&seg.screen, &seg.voice] {
            assert!(
                !all.iter().any(|p| fs::read(p).unwrap() == **sealed),
                "redacted media still on disk"
            );
        }
    }
    let identity = dep.run_ok(&[
        "keys",
        "export-recording-identity",
        "--data",
        &d,
        "--reason",
        "check redaction",
    ]);
    let id_file = dep.root.join("identity.txt");
    fs::write(&id_file, identity.trim()).unwrap();
    let age = |path: &Path| {
        std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&id_file)
            .arg(path)
            .output()
            .unwrap()
    };
    let kept = age(&dep.blob_dir(c).join("000004.voice.age"));
    assert!(kept.status.success());
    assert_eq!(kept.stdout, format!("voice {c} 4").as_bytes());
    assert!(!age(&dep.blob_dir(c).join("000002.voice.age"))
        .status
        .success());

    // Each redacted segment has a tombstone signed by the receipt key, naming its blobs.
    let receipt_key: [u8; 32] = B64
        .decode(
            fs::read_to_string(dep.data.join("keys/receipt.pub"))
                .unwrap()
                .trim(),
        )
        .unwrap()
        .try_into()
        .unwrap();
    let receipt_key = VerifyingKey::from_bytes(&receipt_key).unwrap();
    let c2 = &c_segments[1];
    let printed = dep.run_ok(&[
        "tombstone",
        "--data",
        &d,
        "--segment",
        &c2.manifest.document.segment_id.to_string(),
    ]);
    let tombstone = SignedTombstone::verify(printed.trim().as_bytes(), Some(&receipt_key))
        .unwrap()
        .document;
    assert_eq!(tombstone.segment_id, c2.manifest.document.segment_id);
    assert_eq!(tombstone.case, "PCI-2026-3");
    assert_eq!(tombstone.blobs.len(), 2);
    assert!(tombstone.blobs.iter().all(|b| b.state == "destroyed"
        && c2
            .manifest
            .document
            .blobs
            .iter()
            .any(|m| m.sha256 == b.sha256)));
    let tombstone_sha = vigil_proto::sha256_hex(printed.trim().as_bytes());
    let no_tombstone = dep.run(&["tombstone", "--data", &d, "--segment", &c1.to_string()]);
    assert!(!no_tombstone.status.success());
    // The audit log holds the evidence: segment ids, blob hashes, tombstone hashes.
    let log = dep.audit();
    let redact_line = log
        .lines()
        .find(|l| l.contains("\trecording.redact\t"))
        .expect("redaction audited");
    assert!(redact_line.contains(&c2.manifest.document.segment_id.to_string()));
    assert!(redact_line.contains(&tombstone_sha));
    assert!(redact_line.contains(&c2.manifest.document.blobs[0].sha256));
    assert!(redact_line.contains("PCI-2026-3") && redact_line.contains("card number"));
    assert!(log.contains("\thold.add\t"), "{log}");
    // An interrupted redaction (media left behind) is completed by running it again, under
    // the same tombstone.
    let leftover = dep.blob_dir(c).join("000003.voice.age");
    fs::write(&leftover, &c_segments[2].voice).unwrap();
    let again = dep.run_ok(&[
        "redact",
        "--data",
        &d,
        "--session",
        &c.to_string(),
        "--from",
        &rfc3339(c0 + 12),
        "--to",
        &rfc3339(c0 + 25),
        "--case",
        "PCI-2026-3",
        "--reason",
        "completing the redaction",
    ]);
    assert!(again.contains(&tombstone_sha), "{again}");
    assert!(!leftover.exists());
    let reprinted = dep.run_ok(&[
        "tombstone",
        "--data",
        &d,
        "--segment",
        &c2.manifest.document.segment_id.to_string(),
    ]);
    assert_eq!(reprinted, printed);

    // The sweep, now: expired screens go, voices stay; B is held; one audited batch.
    let report = sweep(&lib, now).unwrap();
    assert_eq!(report.screen_deleted, 5, "{report:?}"); // A #1-#3, C #1 and #4
    assert_eq!(report.voice_deleted, 0);
    assert_eq!(report.held, 2);
    assert_eq!(report.audit_seqs.len(), 1);
    let mut voice_only = Vec::new();
    for seq in 1..=3 {
        voice_only.extend(names(seq, &["manifest.json", "voice.age"]));
    }
    assert_eq!(dep.files(a), voice_only);
    assert_eq!(dep.files(b).len(), 6, "held session untouched");
    let log = dep.audit();
    let batch = log
        .lines()
        .find(|l| l.contains("\tretention.sweep\t"))
        .expect("batch audited");
    assert!(batch.contains("screen=5 voice=0 segments=5"), "{batch}");
    // The batch names its segments (ids listed, and their digest).
    for seg in &a_segments {
        let id = seg.manifest.document.segment_id.to_string();
        assert!(batch.contains(&id), "{batch}");
    }
    assert!(batch.contains("segment_ids_sha256="), "{batch}");
    // A second sweep finds nothing more to do.
    assert_eq!(sweep(&lib, now).unwrap().audit_seqs.len(), 0);

    // Exports of sessions with expired and redacted media verify, and say what is gone.
    let (out_a, code, text) = export_and_verify(&dep, a, "export-a");
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("EXPIRED session").count(), 3, "{text}");
    assert!(
        text.contains("(000001.screen.age): deleted by retention"),
        "{text}"
    );
    let (out_c, code, text) = export_and_verify(&dep, c, "export-c");
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("REDACTED session").count(), 4, "{text}");
    assert_eq!(text.matches("EXPIRED session").count(), 2, "{text}");
    assert!(out_c
        .join(format!("sessions/{c}/000002.tombstone.json"))
        .exists());
    // A blob missing without a deletion record is still tampering, and so is a missing
    // tombstone.
    let copy = |from: &Path, name: &str| {
        let to = dep.root.join(name);
        let mut files = Vec::new();
        walk(from, &mut files);
        for f in files {
            let target = to.join(f.strip_prefix(from).unwrap());
            fs::create_dir_all(target.parent().unwrap()).unwrap();
            fs::copy(&f, target).unwrap();
        }
        to
    };
    let bad = copy(&out_a, "bad-a");
    fs::remove_file(bad.join(format!("sessions/{a}/000002.voice.age"))).unwrap();
    let verified = dep.run(&["verify", bad.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&verified.stdout).contains("TAMPERED"));
    let bad = copy(&out_c, "bad-c");
    fs::remove_file(bad.join(format!("sessions/{c}/000003.tombstone.json"))).unwrap();
    assert_eq!(
        dep.run(&["verify", bad.to_str().unwrap()]).status.code(),
        Some(1)
    );

    // A hold by device and range keeps C #1 ([c0, c0+10)) past its voice retention.
    let hold_c = dep.run_ok(&[
        "hold",
        "add",
        "--data",
        &d,
        "--case",
        "CASE-18",
        "--device",
        &dep.device_id,
        "--from",
        &rfc3339(c0),
        "--to",
        &rfc3339(c0 + 5),
        "--reason",
        "regulator inquiry",
    ]);
    // Seven years later: every voice goes, except what the holds cover.
    let later = now + 2555 * DAY;
    let report = sweep(&lib, later).unwrap();
    assert_eq!(report.voice_deleted, 4, "{report:?}"); // A #1-#3, C #4
    assert_eq!(report.held, 3); // B #1, #2; C #1
    assert_eq!(dep.files(b).len(), 6);
    assert!(dep.blob_dir(c).join("000001.voice.age").exists());
    assert!(!dep.blob_dir(c).join("000004.voice.age").exists());

    // Released, session B goes at the next sweep; C #1 stays held.
    dep.run_ok(&[
        "hold",
        "release",
        "--data",
        &d,
        &hold_b,
        "--reason",
        "case settled",
    ]);
    let again = dep.run(&[
        "hold", "release", "--data", &d, &hold_b, "--reason", "twice",
    ]);
    assert!(!again.status.success());
    assert!(!dep
        .run_ok(&["hold", "list", "--data", &d])
        .contains(&hold_b));
    assert!(dep
        .run_ok(&["hold", "list", "--data", &d, "--all"])
        .contains("case settled"));
    let scopes = dep.run_ok(&["hold", "list", "--data", &d, "--scopes"]);
    assert!(
        scopes.contains(&format!(
            "\tdevice {} [{}, {})",
            dep.device_id,
            rfc3339(c0),
            rfc3339(c0 + 5)
        )),
        "{scopes}"
    );
    let report = sweep(&lib, later).unwrap();
    assert_eq!(
        (report.screen_deleted, report.voice_deleted, report.held),
        (2, 2, 1)
    );
    assert_eq!(
        dep.files(b),
        [names(1, &["manifest.json"]), names(2, &["manifest.json"])].concat()
    );
    assert!(dep.blob_dir(c).join("000001.voice.age").exists());
    assert!(!hold_c.trim().is_empty());

    // The audit log verifies and holds every step.
    let log = dep.audit();
    assert_eq!(log.matches("\tretention.sweep\t").count(), 3, "{log}");
    assert_eq!(log.matches("\thold.add\t").count(), 2);
    assert_eq!(log.matches("\thold.release\t").count(), 1);
    assert!(log.contains("case settled"));
}

/// The server sweeps on its own, every `[retention] sweep_seconds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_sweeps_periodically() {
    let dep = Deployment::start(
        "sweep_seconds = 1\n",
        Backends::new(Meta::Sqlite, Blobs::Local),
    )
    .await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (session, _) = dep.record(now - 200 * DAY, 2).await;
    let (fresh, _) = dep.record(now - 60, 1).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dep.blob_dir(session).join("000002.screen.age").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not sweep"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut expected = names(1, &["manifest.json", "voice.age"]);
    expected.extend(names(2, &["manifest.json", "voice.age"]));
    // Both screens go in one batch; give the second deletion a moment.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(dep.files(session), expected);
    assert_eq!(dep.files(fresh).len(), 3, "a fresh recording is kept");
    let log = dep.audit();
    assert!(
        log.lines()
            .any(|l| l.contains("\tvault:retention\tretention.sweep\t")
                && l.contains("screen=2 voice=0")),
        "{log}"
    );
}

/// Retention comes from the policy in force at ingest: a test policy keeps screens one day and
/// voice thirty; a segment recorded two days ago loses its screen at the server's next sweep
/// and keeps its voice, and its terms name the policy version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_retention_policy_expires_screens_and_keeps_voice() {
    let dep = Deployment::start(
        "sweep_seconds = 1\n",
        Backends::new(Meta::Sqlite, Blobs::Local),
    )
    .await;
    let d = dep.d().to_owned();
    let policy = std::path::Path::new(&d).join("short.json");
    std::fs::write(
        &policy,
        r#"{"retention_screen_days": 1, "retention_voice_days": 30}"#,
    )
    .unwrap();
    let set = dep.run_ok(&[
        "policy",
        "set",
        "--data",
        &d,
        "--org",
        "--file",
        policy.to_str().unwrap(),
        "--reason",
        "test policy: short retention",
    ]);
    assert!(set.contains("version 1"), "{set}");
    // The server picks the change up within its watch period.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let (session, segments) = dep.record(now - 2 * DAY, 2).await;
    let lib = dep.library();
    let life = lib
        .store()
        .segment_lifecycle(segments[0].manifest.document.segment_id)
        .unwrap()
        .unwrap();
    let terms = life.terms.expect("terms fixed at ingest");
    assert_eq!(terms.policy_version, 1);
    assert_eq!(terms.screen_expires_at, now - 2 * DAY + DAY);
    assert_eq!(terms.voice_expires_at, now - 2 * DAY + 30 * DAY);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while dep.blob_dir(session).join("000002.screen.age").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not sweep"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut expected = names(1, &["manifest.json", "voice.age"]);
    expected.extend(names(2, &["manifest.json", "voice.age"]));
    assert_eq!(dep.files(session), expected);
}

/// At scale too: PostgreSQL metadata and S3 blobs. A device-wide range redaction destroys
/// the objects in the bucket, the on-demand `retention sweep` deletes an expired screen, a
/// device + range hold keeps another, and the rows say why in the database itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_and_sweep_on_postgres_and_s3() {
    let dep = Deployment::start("", Backends::new(Meta::Postgres, Blobs::S3)).await;
    let d = dep.d().to_owned();
    let start = OffsetDateTime::now_utc().unix_timestamp() - 200 * DAY;
    let (session, segments) = dep.record(start, 3).await;
    dep.run_ok(&[
        "hold",
        "add",
        "--data",
        &d,
        "--case",
        "CASE-9",
        "--device",
        &dep.device_id,
        "--from",
        &rfc3339(start + 20),
        "--to",
        &rfc3339(start + 30),
        "--reason",
        "inquiry",
    ]);
    let redacted = dep.run_ok(&[
        "redact",
        "--data",
        &d,
        "--device",
        &dep.device_id,
        "--from",
        &rfc3339(start),
        "--to",
        &rfc3339(start + 5),
        "--case",
        "PCI-9",
        "--reason",
        "card data on screen",
    ]);
    assert!(redacted.contains("1 segment(s) redacted"), "{redacted}");
    let swept = dep.run_ok(&["retention", "sweep", "--data", &d]);
    assert!(
        swept.contains("deleted 1 screen and 0 voice blob(s); 1 segment(s) held"),
        "{swept}"
    );
    // On demand, the batch names who asked.
    assert!(
        dep.audit()
            .lines()
            .any(|l| l.contains("\tcli:") && l.contains("\tretention.sweep\t")),
        "on-demand sweep audited as the CLI user"
    );
    let mut expected = names(1, &["manifest.json"]);
    expected.extend(names(2, &["manifest.json", "voice.age"]));
    expected.extend(names(3, &["manifest.json", "screen.age", "voice.age"]));
    assert_eq!(dep.files(session), expected);

    let tombstone = dep.run_ok(&[
        "tombstone",
        "--data",
        &d,
        "--segment",
        &segments[0].manifest.document.segment_id.to_string(),
    ]);
    let receipt_key: [u8; 32] = B64
        .decode(
            fs::read_to_string(dep.data.join("keys/receipt.pub"))
                .unwrap()
                .trim(),
        )
        .unwrap()
        .try_into()
        .unwrap();
    let t = SignedTombstone::verify(
        tombstone.trim().as_bytes(),
        Some(&VerifyingKey::from_bytes(&receipt_key).unwrap()),
    )
    .unwrap();
    assert_eq!(t.document.case, "PCI-9");

    let url = dep.backends.pg_url().unwrap().to_owned();
    let rows: Vec<(Option<String>, Option<String>)> = off_runtime(move || {
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.query(
            "SELECT screen_deleted_reason, voice_deleted_reason FROM segments \
             WHERE session_id = $1 ORDER BY sequence",
            &[&session],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    });
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        rows,
        vec![
            (some("redacted"), some("redacted")),
            (some("expired"), None),
            (None, None)
        ]
    );
    let (_, code, text) = export_and_verify(&dep, session, "export");
    assert_eq!(code, 0, "{text}");
    assert_eq!(text.matches("REDACTED session").count(), 2, "{text}");
    assert_eq!(text.matches("EXPIRED session").count(), 1, "{text}");
}

/// A PostgreSQL database made by schema version 1 upgrades in place when a vault opens it:
/// the new columns and tables appear, rows stay (without terms, for the sweeper to fix).
#[test]
fn postgres_version_1_database_upgrades() {
    let backends = Backends::new(Meta::Postgres, Blobs::Local);
    let url = backends.pg_url().unwrap().to_owned();
    off_runtime(move || {
        let v1 = include_str!("../store/src/metadata/schema_pg.sql")
            .split("-- Version 2")
            .next()
            .unwrap();
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(v1).unwrap();
        c.batch_execute(
            "INSERT INTO vigil_schema (version) VALUES (1); \
             INSERT INTO devices (id, public_key, key_id, hostname, os_user, enrolled_at) VALUES \
             ('00000000-0000-0000-0000-000000000001', decode(repeat('01', 32), 'hex'), 'k', 'h', \
              'u', 1); \
             INSERT INTO segments (session_id, sequence, segment_id, device_id, manifest_sha256, \
             last_in_session, recorded_at, received_at, receipt) VALUES \
             ('00000000-0000-0000-0000-000000000002', 1, '00000000-0000-0000-0000-000000000003', \
              '00000000-0000-0000-0000-000000000001', 'aa', false, 10, 11, '\\x01');",
        )
        .unwrap();
        let store = vigil_vault_store::metadata::PostgresStore::open(&url, 1).unwrap();
        let old = store.segments_without_terms(None, 10).unwrap();
        assert_eq!(old.len(), 1);
        assert!(store.holds(true).unwrap().is_empty());
        let version: i64 = c
            .query_one("SELECT max(version) FROM vigil_schema", &[])
            .unwrap()
            .get(0);
        assert_eq!(version, 2);
        drop(store);
        // Opening again changes nothing.
        vigil_vault_store::metadata::PostgresStore::open(&url, 1).unwrap();
    });
}
