//! Acceptance: `vigil-agent verify` passes on a clean spool; a flipped blob byte, a deleted middle
//! segment or an edited manifest each make it fail, naming the segment and the reason. With an
//! identity it opens segments into playable files.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use vigil_e2e::TestDesktop;

fn copy_dir(from: &Path, to: &Path) -> PathBuf {
    let out = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(out.success());
    to.to_path_buf()
}

fn verify_fails_with(desk: &TestDesktop, dir: &Path, expected: &str) {
    let out = agent(desk).arg("verify").arg(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(expected),
        "expected {expected:?} in:\n{stdout}"
    );
}

#[test]
fn verify_detects_flipped_bytes_missing_segments_and_edited_manifests() {
    let desk = TestDesktop::start().unwrap();
    let id = identity(desk.dir());
    let spool = desk.dir().join("spool");
    let tone = desk.tone_wav("tone", 440, 20).unwrap();
    let _caller = desk.play("caller", &tone).unwrap();
    run_ok(
        agent(&desk)
            .args(["record", "--for", "6", "--segment-seconds", "2", "--spool"])
            .arg(&spool)
            .args(["--recipient", &id.recipient]),
    );
    let session = session_dir(&spool);
    let out = run_ok(agent(&desk).arg("verify").arg(&session));
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 segments verified"));

    let flipped = copy_dir(&session, &desk.dir().join("flipped"));
    let blob = flipped.join("000002.voice.age");
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&blob, bytes).unwrap();
    verify_fails_with(&desk, &flipped, "BlobHashMismatch segment #2");

    let deleted = copy_dir(&session, &desk.dir().join("deleted"));
    for f in [
        "000002.manifest.json",
        "000002.screen.age",
        "000002.voice.age",
    ] {
        let _ = std::fs::remove_file(deleted.join(f));
    }
    verify_fails_with(&desk, &deleted, "SequenceGap segment #2");

    let edited = copy_dir(&session, &desk.dir().join("edited"));
    let manifest = edited.join("000002.manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replacen("\"policy_version\":0", "\"policy_version\":1", 1);
    assert_ne!(text, changed);
    std::fs::write(&manifest, changed).unwrap();
    verify_fails_with(&desk, &edited, "BadSignature segment #2");

    // Opened with the identity: one playable file per segment with all three tracks.
    let opened = desk.dir().join("opened");
    run_ok(
        agent(&desk)
            .arg("verify")
            .arg(&session)
            .arg("--identity")
            .arg(&id.file)
            .arg("--open-to")
            .arg(&opened),
    );
    let files: Vec<_> = std::fs::read_dir(&opened)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3);
    for file in files {
        let probe = ffprobe_json(&file, &["-show_streams"]);
        let codecs: Vec<_> = probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["codec_name"].clone())
            .collect();
        assert_eq!(codecs, ["h264", "opus", "opus"]);
    }
}
