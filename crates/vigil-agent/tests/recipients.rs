//! Issue 13 §2, the agent's side: the recorded person cannot make their agent seal to a key of
//! their own. An enrolled agent seals to the recipients its vault signs (the vault's own and the
//! escrow recipients set at the vault); a `--recipient` of the user's is refused before
//! anything is recorded, and a recipient swapped into the spool's `enrollment.json` is not
//! sealed to once the vault's signed policy has arrived. The escrow identity, which the vault
//! never holds, opens every segment; the vault accepts them.

mod common;

use std::path::Path;
use std::process::Command;

use common::rig::{unenrolled_with, Rig};
use common::*;

/// Whether `identity` opens the sealed `blob`.
fn opens(identity: &Path, blob: &Path) -> bool {
    Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg("-o")
        .arg("/dev/null")
        .arg(blob)
        .status()
        .unwrap()
        .success()
}

/// Records `seconds` of voice; returns the new session's folder while it is in the spool
/// (the uploader removes what the vault acknowledged).
fn record(rig: &Rig, seconds: &str) -> Option<std::path::PathBuf> {
    let before: Vec<_> = sessions(&rig.spool);
    let out = rig
        .agent(&[
            "record",
            "--for",
            seconds,
            "--segment-seconds",
            "2",
            "--no-screen",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sessions(&rig.spool)
        .into_iter()
        .find(|s| !before.contains(s))
}

fn sessions(spool: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(spool.join("sessions"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn blobs(session: &Path) -> Vec<std::path::PathBuf> {
    let mut all: Vec<_> = std::fs::read_dir(session)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".age"))
        .collect();
    all.sort();
    all
}

#[test]
fn an_enrolled_agent_seals_only_to_the_recipients_its_vault_signs() {
    let keys = tempfile::tempdir().unwrap();
    let [escrow, mine] = ["escrow", "mine"].map(|name| {
        let dir = keys.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        identity(&dir)
    });
    let mut rig = unenrolled_with("", &["--escrow-recipient", &escrow.recipient]);
    rig.enroll(&rig.vault.url(), &rig.vault.ca_file(), None);
    let enrollment_file = rig.spool.join("config/enrollment.json");
    let enrollment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&enrollment_file).unwrap()).unwrap();
    let vaults: Vec<String> = serde_json::from_value(enrollment["recipients"].clone()).unwrap();
    assert_eq!(
        vaults.len(),
        2,
        "the vault's and the escrow recipient: {vaults:?}"
    );
    assert!(vaults.contains(&escrow.recipient));

    // The user's own recipient on the command line: refused, nothing recorded.
    let _tone = rig.play_caller_tone();
    let out = rig
        .agent(&[
            "record",
            "--for",
            "3",
            "--no-screen",
            "--recipient",
            &mine.recipient,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a user's recipient was accepted");
    assert!(stderr.contains("is not one the vault signs"), "{stderr}");
    assert!(sessions(&rig.spool).is_empty(), "something was recorded");

    // A policy from the vault (signed, with its recipients), received while recording.
    let layer = keys.path().join("layer.json");
    std::fs::write(&layer, r#"{"fps": 4}"#).unwrap();
    rig.vault
        .run(
            &[
                "policy",
                "set",
                "--org",
                "--file",
                layer.to_str().unwrap(),
                "--reason",
                "test",
            ],
            true,
        )
        .unwrap();
    record(&rig, "5");
    let policy = std::fs::read_to_string(rig.spool.join("config/policy.json")).unwrap();
    assert!(
        policy.contains(&escrow.recipient),
        "the signed policy names no recipients"
    );

    // The user swaps the vault's recipient in their spool's enrollment for their own.
    let tampered = std::fs::read_to_string(&enrollment_file)
        .unwrap()
        .replace(&vaults[0], &mine.recipient);
    std::fs::write(&enrollment_file, tampered).unwrap();
    // The vault away: the segments stay in the spool to be looked at.
    rig.vault.kill();
    let session = record(&rig, "4").expect("no session in the spool");
    let sealed = blobs(&session);
    assert!(!sealed.is_empty());
    let vault_identity = keys.path().join("vault-identity.txt");
    std::fs::write(
        &vault_identity,
        rig.vault.export_identity("recipients test").unwrap() + "\n",
    )
    .unwrap();
    for blob in &sealed {
        assert!(
            !opens(&mine.file, blob),
            "the user's key opens {}",
            blob.display()
        );
        assert!(
            opens(&escrow.file, blob),
            "escrow cannot open {}",
            blob.display()
        );
        assert!(
            opens(&vault_identity, blob),
            "the vault cannot open {}",
            blob.display()
        );
    }
    // The vault accepts what was sealed for it and its escrow.
    rig.vault.serve().unwrap();
    let uploaded = rig.upload_all();
    let id = session.file_name().unwrap().to_string_lossy().into_owned();
    let lines = rig.gap_lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&id) && l.contains("missing=none")),
        "{uploaded}\n{lines:?}"
    );
}
