//! Acceptance (issue 3): DTMF tones played into `caller` during a recording are masked —
//! multimon-ng finds no digit in the decoded recording, while it finds them in an unmasked
//! control recording (proof that the oracle works) — and the manifest lists the spans.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use vigil_e2e::TestDesktop;

const CARD: &str = "4111111111111111";

/// Records 12 s with the card number keyed as DTMF at ~3 s; returns the digits multimon-ng
/// hears in the decoded system track and the manifests.
fn record_with_tones(
    desk: &TestDesktop,
    id: &Identity,
    name: &str,
    config: &str,
) -> (String, Vec<serde_json::Value>) {
    let tones = desk.dtmf_wav(name, CARD).unwrap();
    let spool = desk.dir().join(format!("spool-{name}"));
    let config_file = desk.dir().join(format!("{name}.toml"));
    std::fs::write(&config_file, config).unwrap();
    let child = agent(desk)
        .arg("--config")
        .arg(&config_file)
        .args([
            "record",
            "--for",
            "12",
            "--segment-seconds",
            "6",
            "--no-screen",
            "--spool",
        ])
        .arg(&spool)
        .args(["--recipient", &id.recipient])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let player = desk.play("caller", &tones).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(player);
    assert!(out.status.success());
    let session = session_dir(&spool);
    let manifests = manifests(&session);
    let mut heard = String::new();
    for m in &manifests {
        let seq = m["sequence"].as_u64().unwrap();
        let voice = desk.dir().join(format!("{name}-{seq}.mka"));
        decrypt(id, &session.join(format!("{seq:06}.voice.age")), &voice);
        for track in [0, 1] {
            heard.push_str(&dtmf_digits(desk.dir(), &voice, track));
        }
    }
    (heard, manifests)
}

/// Digits multimon-ng decodes from one track.
fn dtmf_digits(dir: &Path, media: &Path, track: usize) -> String {
    let raw = dir.join("track.raw");
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(media)
            .args([
                "-map",
                &format!("0:a:{track}"),
                "-ar",
                "22050",
                "-ac",
                "1",
                "-f",
                "s16le",
            ])
            .arg(&raw),
    );
    let out = run_ok(
        Command::new("multimon-ng")
            .args(["-q", "-t", "raw", "-a", "DTMF"])
            .arg(&raw),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("DTMF: "))
        .collect()
}

#[test]
fn dtmf_tones_never_reach_the_recording() {
    let desk = TestDesktop::start().unwrap();
    let id = identity(desk.dir());

    let (control, _) = record_with_tones(&desk, &id, "control", "[masking]\ndtmf = false\n");
    assert!(
        control.matches('1').count() >= 10,
        "the oracle must hear the unmasked tones, heard {control:?}"
    );

    let (masked, manifests) = record_with_tones(&desk, &id, "masked", "");
    assert_eq!(masked, "", "digits leaked into the recording");
    let spans: Vec<_> = manifests
        .iter()
        .flat_map(|m| m["masked_spans"].as_array().unwrap().clone())
        .collect();
    assert!(!spans.is_empty(), "the manifest lists the masked spans");
    assert!(spans.iter().all(|s| s["trigger"] == "dtmf"));
}
