//! Acceptance: `vigil-agent record --for 60` on the test desktop, with a 440 Hz tone into
//! `caller` and speech into the microphone, gives 6 sealed segments that `age` opens into
//! H.264 1920x1080 + two Opus tracks, each track carrying its own signal, joined without gaps;
//! and no plaintext media anywhere on disk.

mod common;

use std::path::Path;

use common::*;
use vigil_e2e::TestDesktop;

const MEDIA_SIGNATURES: [&[u8]; 4] = [b"\x1a\x45\xdf\xa3", b"OpusHead", b"x264 - core", b"Lavf"];

fn assert_no_plaintext_media(dir: &Path) {
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        for sig in MEDIA_SIGNATURES {
            assert!(
                !bytes.windows(sig.len()).any(|w| w == sig),
                "{} contains plaintext media ({:?})",
                entry.display(),
                String::from_utf8_lossy(sig)
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn sixty_seconds_give_six_sealed_segments_with_separate_voice_tracks() {
    let desk = TestDesktop::start().unwrap();
    let id = identity(desk.dir());
    let spool = desk.dir().join("spool");
    let agent_tmp = desk.dir().join("agent-tmp");
    std::fs::create_dir_all(&agent_tmp).unwrap();

    let tone = desk.tone_wav("tone", 440, 75).unwrap();
    let speech = desk
        .speech_wav(
            "speech",
            "Good morning, you are speaking with the billing team. How can I help you today?",
            75,
        )
        .unwrap();
    let _caller = desk.play("caller", &tone).unwrap();
    let _mic = desk.play("micfeed", &speech).unwrap();

    // The pointer moves all along, so that every segment has many frames to encode.
    let moving = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mover = {
        let moving = moving.clone();
        let env: Vec<(String, String)> = desk.env().to_vec();
        std::thread::spawn(move || {
            let mut i = 0u32;
            while moving.load(std::sync::atomic::Ordering::SeqCst) {
                let (x, y) = (100 + (i * 37) % 1700, 100 + (i * 23) % 900);
                let _ = std::process::Command::new("xdotool")
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .args(["mousemove", &x.to_string(), &y.to_string()])
                    .status();
                std::thread::sleep(std::time::Duration::from_millis(150));
                i += 1;
            }
        })
    };
    let out = run_ok(
        agent(&desk)
            .env("TMPDIR", &agent_tmp)
            .args(["record", "--for", "60", "--spool"])
            .arg(&spool)
            .args(["--recipient", &id.recipient]),
    );
    moving.store(false, std::sync::atomic::Ordering::SeqCst);
    mover.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("6 sealed segments"), "{stdout}");

    let session = session_dir(&spool);
    let manifests = manifests(&session);
    assert_eq!(manifests.len(), 6);
    run_ok(agent(&desk).arg("verify").arg(&session));

    // Consecutive segments join: each ends where the next starts, on the session clock.
    for pair in manifests.windows(2) {
        assert_eq!(pair[0]["end"]["mono_ns"], pair[1]["start"]["mono_ns"]);
        assert_eq!(
            pair[1]["prev_manifest_sha256"].as_str().map(str::len),
            Some(64)
        );
    }
    assert!(manifests.last().unwrap()["last_in_session"]
        .as_bool()
        .unwrap());

    let scratch = desk.dir().join("opened");
    std::fs::create_dir_all(&scratch).unwrap();
    for (i, m) in manifests.iter().enumerate() {
        let seq = i + 1;
        let screen = scratch.join(format!("{seq}.screen.mkv"));
        let voice = scratch.join(format!("{seq}.voice.mka"));
        decrypt(&id, &session.join(format!("{seq:06}.screen.age")), &screen);
        decrypt(&id, &session.join(format!("{seq:06}.voice.age")), &voice);

        let video = ffprobe_json(&screen, &["-show_streams"]);
        let v = &video["streams"][0];
        assert_eq!(v["codec_name"], "h264");
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(1920), Some(1080))
        );

        let audio = ffprobe_json(&voice, &["-show_streams", "-show_format"]);
        let streams = audio["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2);
        assert!(streams.iter().all(|s| s["codec_name"] == "opus"));
        assert_eq!(streams[0]["tags"]["title"], "microphone");
        assert_eq!(streams[1]["tags"]["title"], "system_audio");
        let duration: f64 = audio["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (duration - 10.0).abs() <= 0.025,
            "segment {seq} voice lasts {duration} s"
        );

        // Every segment opens with a keyframe at its start and keeps every changed frame
        // (the pointer moved about 6 times a second, capture runs at 5 fps).
        let packets = ffprobe_json(&screen, &["-show_packets", "-select_streams", "v"]);
        let packets = packets["packets"].as_array().unwrap();
        let first = &packets[0];
        assert_eq!(
            first["pts_time"].as_str().unwrap().parse::<f64>().unwrap(),
            0.0,
            "segment {seq}"
        );
        assert!(
            first["flags"].as_str().unwrap().starts_with('K'),
            "segment {seq}"
        );
        assert!(
            packets.len() >= 30,
            "segment {seq} has only {} video packets",
            packets.len()
        );
        let decoded = run_ok(
            std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&screen)
                .args(["-fps_mode", "passthrough", "-f", "null", "-"]),
        );
        assert!(decoded.status.success());

        // Energy at 440 Hz, per track, after the first second of the recording.
        let skip = if seq == 1 { 48_000 } else { 0 };
        let mic = decode_audio(&voice, 0);
        let system = decode_audio(&voice, 1);
        let (mic, system) = (&mic[skip..], &system[skip..]);
        let (mic_tone, sys_tone) = (tone_share(mic, 440.0), tone_share(system, 440.0));
        assert!(
            sys_tone > 0.8,
            "segment {seq}: system track is not the tone (share {sys_tone:.3}); events: {}",
            m["events"]
        );
        // Silence is allowed only where the manifest reports a gap (samples lost on a starved
        // machine are filled with silence and reported, never hidden).
        let silent = silent_share(system);
        let reported_s: f64 = m["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "gap" && e["source"] == "system_audio")
            .map(|e| (e["until_ns"].as_u64().unwrap() - e["at_ns"].as_u64().unwrap()) as f64 / 1e9)
            .sum();
        let unexplained = silent - reported_s / (system.len() as f64 / 48_000.0);
        assert!(
            unexplained < 0.05,
            "segment {seq}: {:.0} % of the system track is silent, {reported_s:.2} s reported; events: {}",
            silent * 100.0,
            m["events"]
        );
        assert!(
            mic_tone < 0.05,
            "segment {seq}: tone leaks into the microphone (share {mic_tone:.3})"
        );
        assert!(
            rms(mic) > 0.01,
            "segment {seq}: no speech in the microphone track (rms {:.4})",
            rms(mic)
        );
    }

    // Only sealed bytes in the spool; nothing in the agent's temp folder.
    for file in walk(&session) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&file).unwrap();
        if name.ends_with(".age") {
            assert!(
                bytes.starts_with(b"age-encryption.org/v1\n"),
                "{name} is not an age file"
            );
        } else {
            assert!(
                name.ends_with(".manifest.json"),
                "unexpected file {name} in the spool"
            );
        }
    }
    assert_no_plaintext_media(&spool);
    assert_no_plaintext_media(&agent_tmp);
}

#[test]
fn recording_is_refused_without_a_valid_recipient() {
    let desk = TestDesktop::start().unwrap();
    let spool = desk.dir().join("spool");
    for args in [vec![], vec!["--recipient", "age1notarealkey"]] {
        let out = agent(&desk)
            .args(["record", "--for", "2", "--spool"])
            .arg(&spool)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("recipient"), "{stderr}");
    }
    let sessions = spool.join("sessions");
    assert!(!sessions.exists() || std::fs::read_dir(&sessions).unwrap().next().is_none());
}
