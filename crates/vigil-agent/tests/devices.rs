//! Acceptance: the screen resolution changes (RandR) and the default output is switched during a
//! recording; capture continues within 3 s, and the manifests say what happened.

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use common::*;
use vigil_e2e::TestDesktop;

/// The wall time of an event, from its segment's start stamps.
fn event_wall(manifest: &serde_json::Value, event: &serde_json::Value) -> SystemTime {
    let start_mono = manifest["start"]["mono_ns"].as_u64().unwrap();
    let at = event["at_ns"].as_u64().unwrap();
    wall(&manifest["start"]["wall"]) + Duration::from_nanos(at.saturating_sub(start_mono))
        - Duration::from_nanos(start_mono.saturating_sub(at))
}

#[test]
fn resolution_change_and_default_sink_switch_do_not_stop_the_recording() {
    let desk = TestDesktop::start().unwrap();
    desk.pactl(&["load-module", "module-null-sink", "sink_name=headset"])
        .unwrap();
    let id = identity(desk.dir());
    let spool = desk.dir().join("spool");
    let caller_tone = desk.tone_wav("caller", 440, 40).unwrap();
    let headset_tone = desk.tone_wav("headset", 1000, 40).unwrap();
    let caller = desk.play("caller", &caller_tone).unwrap();
    let _headset = desk.play("headset", &headset_tone).unwrap();

    let child = agent(&desk)
        .args(["record", "--for", "24", "--segment-seconds", "6", "--spool"])
        .arg(&spool)
        .args(["--recipient", &id.recipient])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(7));
    let resized_at = SystemTime::now();
    desk.set_resolution(1280, 720).unwrap();
    std::thread::sleep(Duration::from_secs(4));
    // PulseAudio moves streams on the default sink along with it; stop the caller's tone so that
    // only the headset's 1 kHz tone can reach the system track after the switch.
    drop(caller);
    let switched_at = SystemTime::now();
    desk.pactl(&["set-default-sink", "headset"]).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let session = session_dir(&spool);
    let manifests = manifests(&session);
    assert_eq!(manifests.len(), 4);
    run_ok(agent(&desk).arg("verify").arg(&session));

    let events: Vec<(&serde_json::Value, &serde_json::Value)> = manifests
        .iter()
        .flat_map(|m| m["events"].as_array().unwrap().iter().map(move |e| (m, e)))
        .collect();
    let geometry = events
        .iter()
        .find(|(_, e)| e["kind"] == "screen_geometry_changed")
        .expect("the manifest records the resolution change");
    assert_eq!(geometry.1["detail"], "1920x1080 -> 1280x720");
    let delay = event_wall(geometry.0, geometry.1)
        .duration_since(resized_at)
        .unwrap_or_default();
    assert!(
        delay <= Duration::from_secs(3),
        "screen followed after {delay:?}"
    );

    let switch = events
        .iter()
        .find(|(_, e)| e["kind"] == "device_changed" && e["source"] == "system_audio")
        .expect("the manifest records the default sink switch");
    assert_eq!(switch.1["detail"], "caller.monitor -> headset.monitor");
    let delay = event_wall(switch.0, switch.1)
        .duration_since(switched_at)
        .unwrap_or_default();
    assert!(
        delay <= Duration::from_secs(3),
        "system audio followed after {delay:?}"
    );

    // The last segment: screen at the new size, system audio from the new default output.
    let screen = desk.dir().join("last.mkv");
    let voice = desk.dir().join("last.mka");
    decrypt(&id, &session.join("000004.screen.age"), &screen);
    decrypt(&id, &session.join("000004.voice.age"), &voice);
    let video = ffprobe_json(&screen, &["-show_streams"]);
    assert_eq!(
        (
            video["streams"][0]["width"].as_u64(),
            video["streams"][0]["height"].as_u64()
        ),
        (Some(1280), Some(720))
    );
    let system = decode_audio(&voice, 1);
    let share = tone_share(&system, 1000.0);
    assert!(
        share > 0.8,
        "system track does not follow the new default output (1 kHz share {share:.3})"
    );
}
