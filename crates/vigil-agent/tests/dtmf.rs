//! Acceptance (issue 3): DTMF tones played into `caller` during a recording are masked —
//! multimon-ng finds no digit in the decoded recording, while it finds them in an unmasked
//! control recording (proof that the oracle works) — and the manifest lists the spans.
//! Issue 11: the caller speaks and the agent speaks all along, so a muted track cannot pass:
//! outside the spans both voices are in the recording, inside them both tracks are zero.

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
) -> (String, Vec<serde_json::Value>, Vec<[Vec<f32>; 2]>) {
    let tones = desk.dtmf_wav(name, CARD).unwrap();
    let caller = desk
        .speech_wav(
            &format!("{name}-caller"),
            "Yes, I will key my card number in now, one moment please.",
            16,
        )
        .unwrap();
    let agent_voice = desk
        .speech_wav(
            &format!("{name}-agent"),
            "Thank you, take your time, I am listening.",
            16,
        )
        .unwrap();
    let _caller = desk.play("caller", &caller).unwrap();
    let _agent = desk.play("micfeed", &agent_voice).unwrap();
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
    let mut tracks = Vec::new();
    for m in &manifests {
        let seq = m["sequence"].as_u64().unwrap();
        let voice = desk.dir().join(format!("{name}-{seq}.mka"));
        decrypt(id, &session.join(format!("{seq:06}.voice.age")), &voice);
        for track in [0, 1] {
            heard.push_str(&dtmf_digits(desk.dir(), &voice, track));
        }
        tracks.push([decode_audio(&voice, 0), decode_audio(&voice, 1)]);
    }
    (heard, manifests, tracks)
}

/// The loudest sample of `samples` (48 kHz, segment-relative) between two session times.
fn loudest(samples: &[f32], seg_start: u64, from_ns: u64, to_ns: u64) -> f32 {
    let at = |ns: u64| ((ns.saturating_sub(seg_start)) as f64 / 1e9 * 48_000.0) as usize;
    let (a, b) = (at(from_ns).min(samples.len()), at(to_ns).min(samples.len()));
    samples[a..b].iter().fold(0f32, |m, s| m.max(s.abs()))
}

/// Share of 100-ms windows between two session times that carry sound (RMS > 0.005).
fn sounding_share(samples: &[f32], seg_start: u64, from_ns: u64, to_ns: u64) -> f64 {
    let at = |ns: u64| ((ns.saturating_sub(seg_start)) as f64 / 1e9 * 48_000.0) as usize;
    let (a, b) = (at(from_ns).min(samples.len()), at(to_ns).min(samples.len()));
    let windows: Vec<&[f32]> = samples[a..b]
        .chunks(4_800)
        .filter(|w| w.len() == 4_800)
        .collect();
    if windows.is_empty() {
        return 0.0;
    }
    let loud = windows.iter().filter(|w| rms(w) > 0.005).count();
    loud as f64 / windows.len() as f64
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

    let (control, _, _) = record_with_tones(&desk, &id, "control", "[masking]\ndtmf = false\n");
    assert!(
        control.matches('1').count() >= 10,
        "the oracle must hear the unmasked tones, heard {control:?}"
    );

    let (masked, manifests, tracks) = record_with_tones(&desk, &id, "masked", "");
    assert_eq!(masked, "", "digits leaked into the recording");
    let spans: Vec<_> = manifests
        .iter()
        .flat_map(|m| m["masked_spans"].as_array().unwrap().clone())
        .collect();
    assert!(!spans.is_empty(), "the manifest lists the masked spans");
    assert!(spans.iter().all(|s| s["trigger"] == "dtmf"));

    // Inside every span both tracks are zero; the whole time outside the spans (a second
    // away from them, after capture warmed up) both voices are heard.
    let (mut outside_caller, mut outside_agent) = (Vec::new(), Vec::new());
    for (m, [mic, system]) in manifests.iter().zip(&tracks) {
        let seg_start = m["start"]["mono_ns"].as_u64().unwrap();
        let seg_end = m["end"]["mono_ns"].as_u64().unwrap();
        let mine: Vec<(u64, u64)> = m["masked_spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["start_ns"].as_u64().unwrap(),
                    s["end_ns"].as_u64().unwrap(),
                )
            })
            .collect();
        for (start, end) in &mine {
            for track in [mic, system] {
                let peak = loudest(track, seg_start, *start, *end);
                assert!(peak < 1e-3, "sound ({peak}) inside a DTMF span");
            }
        }
        // Stretches at least a second away from every span (all spans of the recording).
        let mut t = seg_start + 2_000_000_000;
        while t + 1_000_000_000 <= seg_end {
            let near = spans.iter().any(|s| {
                let (a, b) = (
                    s["start_ns"].as_u64().unwrap(),
                    s["end_ns"].as_u64().unwrap(),
                );
                t + 1_000_000_000 > a.saturating_sub(1_000_000_000) && t < b + 1_000_000_000
            });
            if !near {
                outside_caller.push(sounding_share(system, seg_start, t, t + 1_000_000_000));
                outside_agent.push(sounding_share(mic, seg_start, t, t + 1_000_000_000));
            }
            t += 1_000_000_000;
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    assert!(
        outside_caller.len() >= 3,
        "too little time outside the spans to judge: {outside_caller:?}"
    );
    assert!(
        mean(&outside_caller) > 0.4 && mean(&outside_agent) > 0.4,
        "the voices are missing outside the DTMF spans: caller {outside_caller:?}, agent {outside_agent:?}"
    );
}
