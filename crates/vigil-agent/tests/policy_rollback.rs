//! Issue 13 §9, the agent's side: a signed but older `policy.json` put back into the spool
//! while the vault is away is refused across restarts. The agent keeps the highest version it
//! applied beside its device key (the OS keystore), refuses the older one, says so in
//! `status`, and records under the vault's defaults instead of the rolled-back policy.

mod common;

use std::path::Path;

use common::rig::{rig, Rig};
use common::*;

fn set_org_policy(rig: &Rig, layer: &str, reason: &str) {
    let file = rig.desk.dir().join("layer.json");
    std::fs::write(&file, layer).unwrap();
    rig.vault
        .run(
            &[
                "policy",
                "set",
                "--org",
                "--file",
                file.to_str().unwrap(),
                "--reason",
                reason,
            ],
            true,
        )
        .unwrap();
}

fn record(rig: &Rig, seconds: &str) -> String {
    let out = rig.agent(&["record", "--for", seconds]).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    log
}

fn kept_version(policy: &Path) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(policy).unwrap()).unwrap();
    v["statement"]["version"].as_u64().unwrap()
}

#[test]
fn an_older_signed_policy_put_back_is_refused_across_restarts() {
    let mut rig = rig("[recording]\nsegment_seconds = 2\n", None);
    let _tone = rig.play_caller_tone();
    let policy = rig.spool.join("config/policy.json");

    // Version 1 records voice only (a compliance decision, made with the CLI); the agent keeps it.
    set_org_policy(&rig, r#"{"screen": false}"#, "voice only for now");
    record(&rig, "4");
    assert_eq!(kept_version(&policy), 1);
    let saved = std::fs::read(&policy).unwrap();
    // Version 2 turns the screen back on.
    set_org_policy(&rig, r#"{"screen": true}"#, "screen again");
    record(&rig, "4");
    assert_eq!(kept_version(&policy), 2);

    // The recorded person puts version 1 back and keeps the vault away.
    rig.vault.kill();
    std::fs::write(&policy, &saved).unwrap();
    let log = record(&rig, "4");
    assert!(log.contains("stored policy refused"), "{log}");
    let session = session_dir(&rig.spool);
    let manifests = manifests(&session);
    assert!(!manifests.is_empty());
    for m in &manifests {
        let seq = m["sequence"].as_u64().unwrap();
        assert!(
            session.join(format!("{seq:06}.screen.age")).exists(),
            "segment {seq} has no screen: the rolled-back policy was applied"
        );
        assert_ne!(
            m["policy_version"], 1,
            "recorded under the rolled-back policy"
        );
    }
    let status = rig.agent(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("version 1 is older than version 2"),
        "status does not show the refusal:\n{status}"
    );
}

/// Issue 13 §12, the agent's side: the vault rotates its recording identity and its policy and
/// receipt keys while an enrolled agent is between recordings, and then the agent replaces its
/// own device key (`vigil-agent rekey`). The agent records and delivers
/// on without re-enrolling: it believes the new policy key through the endorsement of the key it
/// enrolled with, checks receipts with the endorsed receipt key, and everything it delivered,
/// before and after, exports and verifies.
#[test]
fn the_vault_rotates_its_keys_and_the_enrolled_agent_follows() {
    let rig = rig("[recording]\nsegment_seconds = 2\n", None);
    let _tone = rig.play_caller_tone();
    record(&rig, "4");
    rig.upload_all();
    let stored_before = rig.gap_lines().len();
    for which in ["recording", "policy", "receipt"] {
        rig.vault
            .run(&["keys", "rotate", which, "--reason", "yearly"], true)
            .unwrap();
    }

    let log = record(&rig, "6");
    assert!(!log.contains("policy refused"), "{log}");
    assert!(log.contains("receipt key was rotated"), "{log}");
    rig.upload_all();
    assert_eq!(
        rig.gap_lines().len(),
        stored_before + 1,
        "the second session arrived"
    );
    // The kept policy is the new key's, believed through the enrolled key's endorsement.
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rig.spool.join("config/policy.json")).unwrap())
            .unwrap();
    let new_policy_key = std::fs::read_to_string(rig.vault.data().join("keys/policy.pub")).unwrap();
    assert_eq!(kept["signature"]["public_key"], new_policy_key.trim());
    let status = rig.agent(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains("refused"), "{status}");

    // The device's own key, replaced without re-enrolling: it records and delivers on.
    let rekeyed = run_ok(&mut rig.agent(&["rekey"]));
    let said = String::from_utf8_lossy(&rekeyed.stdout);
    let new_key_id = said.split_whitespace().last().unwrap().to_owned();
    record(&rig, "4");
    rig.upload_all();
    assert_eq!(
        rig.gap_lines().len(),
        stored_before + 2,
        "the third session arrived"
    );
    let devices = rig.vault.run(&["device", "list"], true).unwrap();
    assert!(
        String::from_utf8_lossy(&devices.stdout).contains(&new_key_id),
        "{said}"
    );
    rig.export_and_verify("after-rotation");
}
