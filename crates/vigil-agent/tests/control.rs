//! The local control API and the state it reports, against a real recording:
//! - callers without the per-user secret are refused; `status`, `pause` and `resume` work;
//! - a pause longer than the configured maximum ends by itself, and while it runs both voice
//!   tracks are digital zero; an API mask (CTI) lands in the manifest;
//! - killing the accessibility bus the focus watcher depends on masks the screen within 1 s,
//!   the status says why, and the watcher recovers by itself.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use vigil_agent::control::{AgentState, ControlClient, ControlCommand, ControlEndpoint};
use vigil_e2e::TestDesktop;

fn config(desk: &TestDesktop, body: &str) -> std::path::PathBuf {
    let path = desk.dir().join("agent.toml");
    std::fs::write(&path, body).unwrap();
    path
}

fn start_recording(
    desk: &TestDesktop,
    id: &Identity,
    config: &Path,
    seconds: u32,
    screen: bool,
) -> Child {
    let mut cmd = agent(desk);
    cmd.arg("--config").arg(config);
    cmd.args([
        "record",
        "--for",
        &seconds.to_string(),
        "--segment-seconds",
        "5",
    ]);
    if !screen {
        cmd.arg("--no-screen");
    }
    cmd.arg("--spool")
        .arg(desk.dir().join("spool"))
        .args(["--recipient", &id.recipient])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `vigil-agent status --json` (after the agent published its endpoint).
fn status(desk: &TestDesktop) -> AgentState {
    let out = run_ok(agent(desk).args(["status", "--json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_for_api(desk: &TestDesktop) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let out = agent(desk).args(["status", "--json"]).output().unwrap();
        if out.status.success() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the control API never answered");
}

/// A raw HTTP request's status code.
fn http_status(port: u16, request: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_api_needs_the_secret_and_a_pause_ends_by_itself() {
    let desk = TestDesktop::start().unwrap();
    let tone = desk.tone_wav("caller", 440, 40).unwrap();
    let _caller = desk.play("caller", &tone).unwrap();
    let config = config(
        &desk,
        "[masking]\nfocus = false\n[pause]\nallowed = true\nmax_seconds = 3\n",
    );
    let id_key = identity(desk.dir());
    let child = start_recording(&desk, &id_key, &config, 16, false);
    wait_for_api(&desk);

    let folder = control_folder(&desk);
    let port = ControlEndpoint::discover(&folder).unwrap().port;
    let get = |auth: &str| {
        format!("GET /v1/state HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
    };
    assert_eq!(http_status(port, &get("")), 401, "no secret");
    let forged = format!("Authorization: Bearer {}\r\n", "ab".repeat(32));
    assert_eq!(http_status(port, &get(&forged)), 401, "wrong secret");
    let before = status(&desk);
    assert!(before.recording && before.masked.is_empty() && before.paused.is_none());

    // Asked for a minute, allowed three seconds.
    let out = run_ok(agent(&desk).args(["pause", "--reason", "break", "--for", "60"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("paused: yes"));
    let paused = status(&desk);
    assert!(paused.paused.is_some(), "{paused:?}");
    assert!(paused
        .masked
        .iter()
        .any(|m| m.trigger == "pause" && m.audio));
    std::thread::sleep(Duration::from_millis(3_500));
    let later = status(&desk);
    assert!(
        later.paused.is_none(),
        "the pause did not end by itself: {later:?}"
    );
    assert!(later.masked.is_empty(), "{later:?}");

    // A CTI integration masks while the card is taken over the phone, then ends it.
    let client = ControlClient::discover(&folder).unwrap();
    let masked = client
        .send(&ControlCommand::StartMask {
            reason: "card payment by phone".into(),
            max_seconds: None,
        })
        .unwrap();
    let id = masked.api_masks[0];
    assert!(masked.masked.iter().any(|m| m.trigger == "api"));
    std::thread::sleep(Duration::from_secs(2));
    let ended = client.send(&ControlCommand::EndMask { id }).unwrap();
    assert!(ended.api_masks.is_empty() && ended.masked.is_empty());
    assert!(
        client.send(&ControlCommand::EndMask { id }).is_err(),
        "ended twice"
    );

    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("manual pause started"),
        "every pause is logged"
    );
    assert!(
        !folder.join("control.secret").exists(),
        "secret withdrawn at exit"
    );

    // The manifests: the pause lasted the maximum, and both tracks are digital zero inside it.
    let session = session_dir(&desk.dir().join("spool"));
    let mut checked = 0;
    for (k, m) in manifests(&session).iter().enumerate() {
        let seg_start = m["start"]["mono_ns"].as_u64().unwrap();
        let seg_end = m["end"]["mono_ns"].as_u64().unwrap();
        let voice = desk.dir().join(format!("{k}.mka"));
        decrypt(
            &id_key,
            &session.join(format!("{:06}.voice.age", k + 1)),
            &voice,
        );
        let tracks = [decode_audio(&voice, 0), decode_audio(&voice, 1)];
        for span in m["masked_spans"].as_array().unwrap() {
            let trigger = span["trigger"].as_str().unwrap();
            assert!(["pause", "api"].contains(&trigger), "{span}");
            let (start, end) = (
                span["start_ns"].as_u64().unwrap(),
                span["end_ns"].as_u64().unwrap(),
            );
            if trigger == "pause" && start > seg_start && end < seg_end {
                let length = (end - start) as f64 / 1e9;
                assert!((length - 3.0).abs() < 0.05, "pause lasted {length} s");
            }
            let at = |ns: u64| ((ns - seg_start) as f64 / 1e9 * 48_000.0) as usize;
            // 20 ms inside each edge: Opus frames straddling an edge carry the neighbour's sound.
            let (from, to) = (at(start) + 960, at(end).saturating_sub(960));
            for track in &tracks {
                let inside = &track[from.min(track.len())..to.min(track.len())];
                let loudest = inside.iter().fold(0f32, |a, s| a.max(s.abs()));
                if loudest >= 1e-3 {
                    let loud: Vec<usize> = inside
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.abs() >= 1e-3)
                        .map(|(i, _)| i)
                        .collect();
                    eprintln!(
                        "span {from}..{to} of {} samples; loud from {} to {} (count {})",
                        track.len(),
                        loud[0],
                        loud[loud.len() - 1],
                        loud.len()
                    );
                }
                assert!(
                    loudest < 1e-3,
                    "segment {}: sound inside a {trigger} span ({loudest})",
                    k + 1
                );
                checked += inside.len();
            }
        }
    }
    assert!(
        checked > 48_000 * 4,
        "the spans were not found in the recording"
    );
}

/// A GTK window with one ordinary entry.
const NOTES_APP: &str = r#"
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import Gtk
win = Gtk.Window(title="Vigil notes")
entry = Gtk.Entry(width_chars=30)
entry.get_accessible().set_name("Notes")
win.add(entry)
win.connect("destroy", Gtk.main_quit)
win.show_all()
Gtk.main()
"#;

/// The accessibility bus of this desktop only (tests run side by side): its launcher, its
/// bus daemon and its registry.
fn accessibility_bus_pids(desk: &TestDesktop) -> Vec<i32> {
    let bus = desk
        .env()
        .iter()
        .find(|(k, _)| k == "DBUS_SESSION_BUS_ADDRESS")
        .map(|(_, v)| v.clone())
        .unwrap();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if (cmdline.contains("accessibility.conf") || cmdline.contains("at-spi"))
            && String::from_utf8_lossy(&environ).contains(&bus)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_dead_accessibility_watcher_masks_within_a_second_and_recovers() {
    // The session bus starts a new accessibility bus as soon as the watchdog asks for one, so
    // the watcher is back within milliseconds; the screen stays masked until the watcher has
    // reported the focus again (what has focus after an outage is unknown until then).
    let mut desk = TestDesktop::start().unwrap();
    desk.start_accessibility().unwrap();
    let config = config(&desk, "[masking]\nfocus = true\n");
    let id = identity(desk.dir());
    let child = start_recording(&desk, &id, &config, 20, true);
    wait_for_api(&desk);
    let healthy = |s: &AgentState| {
        s.triggers
            .iter()
            .any(|t| t.trigger == "accessibility" && t.healthy)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !healthy(&status(&desk)) {
        assert!(
            Instant::now() < deadline,
            "watcher never healthy: {:?}",
            status(&desk)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(status(&desk).masked.is_empty());

    // The whole accessibility bus goes: launcher, bus daemon, registry.
    let pids = accessibility_bus_pids(&desk);
    assert!(pids.len() >= 2, "no accessibility bus to kill: {pids:?}");
    let killed = Instant::now();
    for pid in &pids {
        run_ok(std::process::Command::new("kill").args(["-9", &pid.to_string()]));
    }
    let masked = loop {
        let s = status(&desk);
        if s.masked
            .iter()
            .any(|m| m.trigger == "watchdog" && m.screen == "full")
        {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(3),
            "not masked: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let delay = killed.elapsed();
    assert!(delay <= Duration::from_secs(1), "masked after {delay:?}");
    assert!(
        masked
            .masked
            .iter()
            .any(|m| m.reason.starts_with("accessibility watcher down")),
        "the status does not say why: {masked:?}"
    );
    // It recovers by itself: a new bus, the watcher back, and the mask lifted by the next
    // focus report. Applications register with the bus that runs when they start, so the
    // report comes from one started now (the agent moves into a form's Name field).
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !status(&desk).masked.is_empty(),
        "unmasked before the focus is known again"
    );
    let script = desk.dir().join("notes.py");
    std::fs::write(&script, NOTES_APP).unwrap();
    let _app = App(desk
        .command("/usr/bin/python3")
        .arg(&script)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let window = xdotool(&desk, &["search", "--sync", "--name", "Vigil notes"]);
    xdotool(&desk, &["windowfocus", "--sync", &window]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&desk);
        if healthy(&s) && s.masked.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {s:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        accessibility_bus_pids(&desk).len() >= 2,
        "the bus came back by itself"
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
