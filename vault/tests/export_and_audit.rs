//! Evidence export and its offline verification, the audited key export and the audit log:
//! segments are ingested through the library, everything else runs the real binary and is
//! judged by exit codes, output and bytes on disk.

#[allow(dead_code)]
mod support;

use std::fs;
use std::path::Path;
use std::process::Output;

use ed25519_dalek::SigningKey;
use support::{believe_old_manifests, manifest, run_ok, vault, Segment, VAULT_KEY};
use uuid::Uuid;
use vigil_proto::api::EnrollRequest;
use vigil_proto::SignedManifest;
use vigil_seal::{DeviceKey, Recipients, Sealer};
use vigil_vault_core::secrets::VaultKey;
use vigil_vault_core::Vault;

/// A segment chained to `prev`, optionally the last of its session.
fn segment(
    sealer: &Sealer,
    key: &SigningKey,
    device: &str,
    session: Uuid,
    seq: u64,
    prev: Option<&Segment>,
    last: bool,
) -> Segment {
    let screen = sealer
        .seal_blob(format!("screen {seq}").as_bytes())
        .unwrap();
    let voice = sealer.seal_blob(format!("voice {seq}").as_bytes()).unwrap();
    let mut m = manifest(device, session, seq, &screen, &voice);
    m.prev_manifest_sha256 = prev.map(|p| p.manifest.digest().0);
    m.last_in_session = last;
    Segment {
        manifest: SignedManifest::sign(m, key).unwrap(),
        screen,
        voice,
    }
}

fn run(args: &[&str]) -> Output {
    vault(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn flip_last_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

/// Verifies a tampered copy of `export`; returns (exit code, report).
fn verify_copy(export: &Path, name: &str, tamper: impl FnOnce(&Path)) -> (i32, String) {
    let copy = export.parent().unwrap().join(name);
    copy_dir(export, &copy);
    tamper(&copy);
    let out = run(&["verify", copy.to_str().unwrap()]);
    (out.status.code().unwrap(), stdout(&out))
}

#[test]
fn export_verify_tampering_key_export_and_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vault");
    let d = data.to_str().unwrap();
    run_ok(&["init", "--data", d]);
    believe_old_manifests(&data);
    let token = run_ok(&["token", "create", "--data", d, "--reason", "new desk 17"]);

    // One device, two sessions: A complete (#1..#4, #4 last), B with #2 never received.
    let vault_handle = Vault::open(&data, &VaultKey::new(VAULT_KEY).unwrap()).unwrap();
    let device = DeviceKey::generate();
    let key = device.signing_key().clone();
    let enrolled = vigil_vault_core::enroll::enroll(
        &vault_handle,
        &EnrollRequest {
            token: token.trim().into(),
            device_public_key: hex::encode(key.verifying_key().as_bytes()),
            hostname: "desk-17".into(),
            user: "agent1".into(),
        },
    )
    .unwrap();
    let device_id = enrolled.device_id.to_string();
    let sealer = Sealer::new(Recipients::parse(&enrolled.recipients).unwrap(), device);
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut stored = Vec::new();
    for seq in 1..=4 {
        let prev = stored.last();
        let seg = segment(&sealer, &key, &device_id, a, seq, prev, seq == 4);
        stored.push(seg);
    }
    let b1 = segment(&sealer, &key, &device_id, b, 1, None, false);
    let b2 = segment(&sealer, &key, &device_id, b, 2, Some(&b1), false);
    let b3 = segment(&sealer, &key, &device_id, b, 3, Some(&b2), false);
    let uploads = stored.iter().map(|s| (a, s)).chain([(b, &b1), (b, &b3)]);
    for (session, seg) in uploads {
        let seq = seg.manifest.document.sequence.to_string();
        let uploader = key.verifying_key();
        vigil_vault_core::ingest::ingest(
            &vault_handle,
            &session.to_string(),
            &seq,
            &seg.body(),
            &uploader,
        )
        .unwrap();
    }
    drop(vault_handle);

    // Export session A: verifies, exit 0; the files are the stored bytes.
    let out_a = tmp.path().join("export-a");
    let oa = out_a.to_str().unwrap();
    let a_text = a.to_string();
    let reason = "case 4711, subject access request";
    let printed = run_ok(&[
        "export",
        "--data",
        d,
        "--out",
        oa,
        "--session",
        &a_text,
        "--reason",
        reason,
    ]);
    assert!(
        printed.contains("exported 4 segment(s) of 1 session(s)"),
        "{printed}"
    );
    for name in [
        "000001.manifest.json",
        "000003.voice.age",
        "000004.screen.age",
    ] {
        assert_eq!(
            fs::read(out_a.join(format!("sessions/{a}/{name}"))).unwrap(),
            fs::read(data.join(format!("blobs/{a}/{name}"))).unwrap(),
            "{name} exported byte for byte"
        );
    }
    assert!(out_a
        .join(format!("sessions/{a}/000002.receipt.json"))
        .is_file());
    let index = fs::read_to_string(out_a.join("index.json")).unwrap();
    assert!(
        index.contains(reason) && index.contains(&device_id),
        "{index}"
    );
    let ok = run(&["verify", oa]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("4 segment(s) with valid signatures in 1 session(s)"));
    assert!(stdout(&ok).contains("OK:"));
    assert!(stdout(&ok).contains("(from the export: compare it"));
    let receipt_pub = fs::read_to_string(data.join("keys/receipt.pub")).unwrap();
    let pinned = run(&["verify", oa, "--receipt-key", receipt_pub.trim()]);
    assert_eq!(pinned.status.code(), Some(0), "{}", stdout(&pinned));
    let pinned_line = format!("receipt key: {} (pinned)", receipt_pub.trim());
    assert!(stdout(&pinned).contains(&pinned_line));

    // A non-empty folder is refused. The plain `export --out DIR` works, and the
    // audit log says that nobody stated a reason.
    let again = run(&["export", "--data", d, "--out", oa, "--reason", "x"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let fresh = tmp.path().join("no-reason");
    let unreasoned = run(&["export", "--data", d, "--out", fresh.to_str().unwrap()]);
    assert!(
        unreasoned.status.success(),
        "{}",
        String::from_utf8_lossy(&unreasoned.stderr)
    );
    let log = run(&["audit", "--data", d]);
    assert!(stdout(&log).contains("not stated (no --reason given)"));

    // Everything: session B has a gap and no end → exit 2, or 0 with --allow-gaps.
    let out_all = tmp.path().join("export-all");
    let oall = out_all.to_str().unwrap();
    run_ok(&[
        "export",
        "--data",
        d,
        "--out",
        oall,
        "--reason",
        "audit sample",
    ]);
    let gaps = run(&["verify", oall]);
    let report = stdout(&gaps);
    assert_eq!(gaps.status.code(), Some(2), "{report}");
    assert!(
        report.contains(&format!(
            "GAP session {b}: segment #2 is not in the export: never received by the vault"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "GAP session {b}: no segment marks the end of the session (last exported is #3): \
             the vault had not received the session's end (highest held #3)"
        )),
        "{report}"
    );
    assert!(!report.contains(&format!("GAP session {a}")), "{report}");
    let allowed = run(&["verify", oall, "--allow-gaps"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", stdout(&allowed));

    // A time window (recorded_at in [from, to)): only A's #4 starts at 30 s.
    let out_window = tmp.path().join("export-window");
    let ow = out_window.to_str().unwrap();
    let printed = run_ok(&[
        "export",
        "--data",
        d,
        "--out",
        ow,
        "--reason",
        "window",
        "--from",
        "1970-01-01T00:00:25Z",
        "--to",
        "1970-01-01T00:00:35Z",
    ]);
    assert!(
        printed.contains("exported 1 segment(s) of 1 session(s)"),
        "{printed}"
    );
    let window = run(&["verify", ow]);
    assert_eq!(window.status.code(), Some(2), "{}", stdout(&window));
    assert!(stdout(&window).contains(
        "segments #1-#3 are not in the export: held by the vault; outside the selection"
    ));
    let bad_time = run(&[
        "export",
        "--data",
        d,
        "--out",
        ow,
        "--reason",
        "x",
        "--from",
        "yesterday",
    ]);
    assert!(!bad_time.status.success());
    assert!(String::from_utf8_lossy(&bad_time.stderr)
        .contains("neither Unix seconds nor an RFC 3339 time"));

    // Tampering: exit 1, and the report names the file and the cause.
    let seg_dir = format!("sessions/{a}");
    let (code, report) = verify_copy(&out_a, "t-blob", |o| {
        flip_last_byte(&o.join(format!("{seg_dir}/000002.screen.age")))
    });
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("BlobHashMismatch"), "{report}");
    assert!(
        report.contains("000002.screen.age): SHA-256 differs from the index"),
        "{report}"
    );

    let (code, report) = verify_copy(&out_a, "t-manifest", |o| {
        let path = o.join(format!("{seg_dir}/000003.manifest.json"));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(
            &path,
            text.replacen("\"user\":\"agent1\"", "\"user\":\"agent9\"", 1),
        )
        .unwrap();
    });
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("BadSignature"), "{report}");
    assert!(
        report.contains("000003.manifest.json): SHA-256 differs from the index"),
        "{report}"
    );

    let (code, report) = verify_copy(&out_a, "t-receipt", |o| {
        let path = o.join(format!("{seg_dir}/000001.receipt.json"));
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen("\"sequence\":1", "\"sequence\":7", 1)).unwrap();
    });
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("receipt signature does not verify"),
        "{report}"
    );

    let (code, report) = verify_copy(&out_a, "t-receipt-byte", |o| {
        flip_last_byte(&o.join(format!("{seg_dir}/000004.receipt.json")))
    });
    assert_eq!(code, 1, "{report}");
    assert!(report.contains("000004.receipt.json"), "{report}");

    let (code, report) = verify_copy(&out_a, "t-deleted", |o| {
        for ext in ["manifest.json", "screen.age", "voice.age", "receipt.json"] {
            fs::remove_file(o.join(format!("{seg_dir}/000002.{ext}"))).unwrap();
        }
    });
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains(&format!(
            "TAMPERED session {a} #2: listed in the index but its files are missing"
        )),
        "{report}"
    );

    let (code, report) = verify_copy(&out_a, "t-index", |o| {
        let path = o.join("index.json");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replacen(reason, "routine check", 1)).unwrap();
    });
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("index's signature does not verify"),
        "{report}"
    );

    let (code, report) = verify_copy(&out_a, "t-added", |o| {
        fs::write(o.join(format!("{seg_dir}/000009.voice.age")), b"planted").unwrap()
    });
    assert_eq!(code, 1, "{report}");
    assert!(
        report.contains("000009.voice.age): not listed in the index (added)"),
        "{report}"
    );

    let other_key = SigningKey::from_bytes(&[5; 32]);
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        other_key.verifying_key().as_bytes(),
    );
    let pinned_wrong = run(&["verify", oa, "--receipt-key", &b64]);
    assert_eq!(
        pinned_wrong.status.code(),
        Some(1),
        "{}",
        stdout(&pinned_wrong)
    );
    assert!(stdout(&pinned_wrong).contains("not the pinned vault key"));

    // The recording identity: refused with a blank reason, printed with one (or with none
    // given, which the audit log says), and it opens the exported blobs offline.
    let blank = run(&[
        "keys",
        "export-recording-identity",
        "--data",
        d,
        "--reason",
        " ",
    ]);
    assert!(!blank.status.success());
    let exported = run(&[
        "keys",
        "export-recording-identity",
        "--data",
        d,
        "--reason",
        "escrow copy for the DPO",
    ]);
    assert!(exported.status.success());
    assert!(!String::from_utf8_lossy(&exported.stderr).contains("AGE-SECRET-KEY"));
    let identity = stdout(&exported);
    assert!(
        identity.trim().starts_with("AGE-SECRET-KEY-1"),
        "{identity}"
    );
    let sealed = fs::read(out_a.join(format!("{seg_dir}/000003.voice.age"))).unwrap();
    assert_eq!(
        vigil_seal::open_blob(identity.trim(), &sealed).unwrap(),
        b"voice 3"
    );
    // And with the age tool itself, as an organization would.
    let id_file = tmp.path().join("recording-identity.txt");
    fs::write(&id_file, &identity).unwrap();
    let blob = out_a.join(format!("{seg_dir}/000003.screen.age"));
    let age = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&id_file)
        .arg(&blob)
        .output()
        .expect("age is installed (scripts/install-deps.sh)");
    assert!(
        age.status.success(),
        "{}",
        String::from_utf8_lossy(&age.stderr)
    );
    assert_eq!(age.stdout, b"screen 3");

    // The audit log: every privileged act, with actor and reason, and the chain holds.
    run_ok(&[
        "device",
        "revoke",
        "--data",
        d,
        &device_id,
        "--reason",
        "laptop stolen",
    ]);
    let audit = run(&["audit", "--data", d, "--verify"]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let log = stdout(&audit);
    let actions: Vec<&str> = log
        .lines()
        .skip(1)
        .map(|l| l.split('\t').nth(3).unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "token.create",
            "device.enroll",
            "export",
            "export",
            "export",
            "export",
            "keys.export_recording_identity",
            "device.revoke"
        ],
        "{log}"
    );
    // Every act of a person is by `cli:<user>`; the enrollment is the device's own.
    assert!(log.lines().all(|l| {
        let actor = l.split('\t').nth(2).unwrap();
        l.starts_with("seq")
            || actor.starts_with("cli:")
            || (l.split('\t').nth(3) == Some("device.enroll") && actor.starts_with("device:"))
    }));
    assert!(
        log.contains(&format!("export\tsession={a}\t{reason}")),
        "{log}"
    );
    assert!(
        log.contains("escrow copy for the DPO") && log.contains("laptop stolen"),
        "{log}"
    );
    assert!(!log.contains("AGE-SECRET-KEY"));
    assert!(String::from_utf8_lossy(&audit.stderr).contains("audit chain verified: 8 record(s)"));

    // A record edited behind the database's back breaks the chain.
    let db = rusqlite::Connection::open(data.join("metadata.sqlite")).unwrap();
    db.execute_batch(
        "DROP TRIGGER audit_log_no_update; \
         UPDATE audit_log SET reason = 'routine' WHERE seq = 2;",
    )
    .unwrap();
    drop(db);
    let broken = run(&["audit", "--data", d, "--verify"]);
    assert!(!broken.status.success());
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("chain broken at record 2"),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}
