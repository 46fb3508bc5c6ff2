//! A softphone that plays the call on a second output (a headset) while the default output plays
//! something else: `--communications-output` mixes that output's loopback into the system-audio
//! track, sample-aligned, without holes.

mod common;

use std::process::Stdio;

use common::*;
use vigil_e2e::TestDesktop;

/// Share of 100 ms windows in which both tones carry a fair part of the power.
fn windows_with_both(samples: &[f32], a_hz: f64, b_hz: f64) -> f64 {
    let windows: Vec<&[f32]> = samples.chunks_exact(4800).collect();
    let both = windows
        .iter()
        .filter(|w| tone_share(w, a_hz) > 0.2 && tone_share(w, b_hz) > 0.2)
        .count();
    both as f64 / windows.len().max(1) as f64
}

#[test]
fn a_second_output_is_mixed_into_the_system_track() {
    let desk = TestDesktop::start().unwrap();
    desk.pactl(&["load-module", "module-null-sink", "sink_name=headset"])
        .unwrap();
    let id = identity(desk.dir());
    let spool = desk.dir().join("spool");
    let caller_tone = desk.tone_wav("caller", 440, 30).unwrap();
    let headset_tone = desk.tone_wav("headset", 1000, 30).unwrap();
    let _caller = desk.play("caller", &caller_tone).unwrap();
    let _headset = desk.play("headset", &headset_tone).unwrap();

    let out = agent(&desk)
        .args([
            "record",
            "--for",
            "12",
            "--segment-seconds",
            "6",
            "--no-screen",
        ])
        .args(["--communications-output", "headset", "--spool"])
        .arg(&spool)
        .args(["--recipient", &id.recipient])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = session_dir(&spool);
    let manifests = manifests(&session);
    assert_eq!(manifests.len(), 2);
    run_ok(agent(&desk).arg("verify").arg(&session));
    let opened = manifests[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["source"] == "communications" && e["detail"] == "headset.monitor");
    assert!(opened, "the manifest names the communications output");

    for (k, manifest) in manifests.iter().enumerate() {
        let voice = desk.dir().join(format!("{k}.mka"));
        decrypt(
            &id,
            &session.join(format!("{:06}.voice.age", k + 1)),
            &voice,
        );
        let system = decode_audio(&voice, 1);
        // The first segment opens while the sources start; judge it after its first second.
        let judged = if k == 0 {
            &system[48_000..]
        } else {
            &system[..]
        };
        let both = windows_with_both(judged, 440.0, 1000.0);
        let gaps: Vec<_> = manifest["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "gap")
            .collect();
        assert!(
            both > 0.95,
            "segment {}: only {:.0} % of the system track carries both outputs; gaps {gaps:?}",
            k + 1,
            both * 100.0
        );
        let mic = decode_audio(&voice, 0);
        for hz in [440.0, 1000.0] {
            assert!(
                tone_share(&mic, hz) < 0.05,
                "segment {}: {hz} Hz leaks into the microphone track",
                k + 1
            );
        }
    }
}
