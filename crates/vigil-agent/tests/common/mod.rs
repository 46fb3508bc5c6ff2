//! Shared helpers of the agent's end-to-end tests: run the real binary on the test desktop and
//! inspect the spool with the real `age`, `ffprobe` and `ffmpeg`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigil_e2e::TestDesktop;

pub mod frames;
pub mod pages;
pub mod rig;
pub mod tls_proxy;

pub const AGENT: &str = env!("CARGO_BIN_EXE_vigil-agent");

pub struct Identity {
    pub file: PathBuf,
    pub recipient: String,
}

pub fn identity(dir: &Path) -> Identity {
    let file = dir.join("identity.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen");
    assert!(out.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    Identity { file, recipient }
}

pub fn agent(desk: &TestDesktop) -> Command {
    let mut cmd = desk.command(AGENT);
    // VIGIL_TEST_LOG chooses the agent's log filter when a test is run by hand to look closer.
    let filter = std::env::var("VIGIL_TEST_LOG").unwrap_or_else(|_| "info,pulseaudio=off".into());
    cmd.env("VIGIL_LOG", filter);
    cmd
}

/// Where the agent logs: a pipe read at its end, or the file VIGIL_TEST_AGENT_LOG names (for
/// a closer look with VIGIL_TEST_LOG=…,vigil_mask=trace: a pipe nobody reads until the end
/// fills and stalls a chatty agent).
pub fn agent_log() -> std::process::Stdio {
    match std::env::var("VIGIL_TEST_AGENT_LOG") {
        Ok(path) => std::fs::File::create(path).unwrap().into(),
        Err(_) => std::process::Stdio::piped(),
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The only session folder of a spool.
pub fn session_dir(spool: &Path) -> PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir(spool.join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "expected one session in {}", spool.display());
    dirs.pop().unwrap()
}

pub fn manifests(session: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(session)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            v["manifest"].clone()
        })
        .collect()
}

/// Decrypts a blob with the `age` CLI into a file of the test's scratch folder.
pub fn decrypt(id: &Identity, blob: &Path, out: &Path) {
    run_ok(
        Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&id.file)
            .arg("-o")
            .arg(out)
            .arg(blob),
    );
}

pub fn ffprobe_json(file: &Path, extra: &[&str]) -> serde_json::Value {
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-of", "json"])
            .args(extra)
            .arg(file),
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Decodes one audio stream to mono 48 kHz f32 samples.
pub fn decode_audio(file: &Path, stream: usize) -> Vec<f32> {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args([
                "-map",
                &format!("0:a:{stream}"),
                "-ac",
                "1",
                "-ar",
                "48000",
                "-f",
                "f32le",
                "-",
            ]),
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Share of the signal's power at one frequency, over 100 ms windows (robust to the phase jumps
/// that a reported gap leaves): the mean over windows that carry sound; 1.0 for a pure tone.
pub fn tone_share(samples: &[f32], hz: f64) -> f64 {
    let shares: Vec<f64> = samples
        .chunks_exact(4800)
        .filter(|w| rms(w) > 1e-4)
        .map(|w| window_tone_share(w, hz))
        .collect();
    if shares.is_empty() {
        return 0.0;
    }
    shares.iter().sum::<f64>() / shares.len() as f64
}

/// Share of silent 100 ms windows.
pub fn silent_share(samples: &[f32]) -> f64 {
    let windows: Vec<_> = samples.chunks_exact(4800).collect();
    windows.iter().filter(|w| rms(w) <= 1e-4).count() as f64 / windows.len().max(1) as f64
}

/// Power of one frequency (Goertzel), normalised by the window's total power.
fn window_tone_share(samples: &[f32], hz: f64) -> f64 {
    let n = samples.len() as f64;
    let k = (n * hz / 48_000.0).round();
    let w = 2.0 * std::f64::consts::PI * k / n;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let tone = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let total: f64 = samples.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
    if total == 0.0 {
        0.0
    } else {
        2.0 * tone / (n * total)
    }
}

pub fn rms(samples: &[f32]) -> f64 {
    (samples.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / samples.len().max(1) as f64).sqrt()
}

/// A manifest's RFC 3339 wall time.
pub fn wall(v: &serde_json::Value) -> std::time::SystemTime {
    let t = time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    std::time::SystemTime::from(t)
}

/// Runs xdotool on the desktop (bounded: a stuck X request fails the test instead of hanging).
pub fn xdotool(desk: &TestDesktop, args: &[&str]) -> String {
    let out = desk
        .command("timeout")
        .args(["30", "xdotool"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "xdotool {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Wall time now, in nanoseconds since the epoch.
pub fn wall_now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A manifest's RFC 3339 wall time, in nanoseconds since the epoch.
pub fn wall_ns(v: &serde_json::Value) -> u128 {
    wall(v)
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// The wall time (ns since the epoch) of a session-clock instant, by a segment's start stamps.
pub fn session_to_wall(manifest: &serde_json::Value, at_ns: u64) -> u128 {
    let seg_wall = wall_ns(&manifest["start"]["wall"]);
    let seg_mono = manifest["start"]["mono_ns"].as_u64().unwrap() as i128;
    (seg_wall as i128 + at_ns as i128 - seg_mono) as u128
}

/// The session-clock time of a wall instant (ns since the epoch), by a segment's start stamps:
/// the inverse of [`session_to_wall`].
pub fn wall_to_session(manifest: &serde_json::Value, wall_ns_at: u128) -> u64 {
    let seg_wall = wall_ns(&manifest["start"]["wall"]) as i128;
    let seg_mono = manifest["start"]["mono_ns"].as_u64().unwrap() as i128;
    (seg_mono + wall_ns_at as i128 - seg_wall).max(0) as u64
}

/// The folder the agent under test publishes its control endpoint in (the desktop's runtime
/// folder).
pub fn control_folder(desk: &TestDesktop) -> PathBuf {
    let runtime = desk
        .env()
        .iter()
        .find(|(k, _)| k == "XDG_RUNTIME_DIR")
        .map(|(_, v)| v.clone())
        .unwrap();
    Path::new(&runtime).join("vigil")
}

/// A GTK window "Vigil checkout" with an entry labelled "Card number" and one named "Name".
pub const GTK_FORM: &str = r#"
import gi
gi.require_version("Gtk", "3.0")
from gi.repository import GLib, Gtk
GLib.set_prgname("vigil-checkout")
win = Gtk.Window(title="Vigil checkout")
win.set_default_size(900, 300)
grid = Gtk.Grid(row_spacing=16, column_spacing=16, margin=40)
label = Gtk.Label(label="Card number", xalign=0)
card = Gtk.Entry(width_chars=30)
label.set_mnemonic_widget(card)
name = Gtk.Entry(width_chars=30)
name.get_accessible().set_name("Name")
grid.attach(label, 0, 0, 1, 1)
grid.attach(card, 1, 0, 1, 1)
grid.attach(name, 1, 1, 1, 1)
win.add(grid)
win.connect("destroy", Gtk.main_quit)
win.show_all()
Gtk.main()
"#;

/// A test application, killed and reaped when dropped.
pub struct App(pub std::process::Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the GTK form and waits for its window; returns the app and its X window id.
pub fn start_gtk_form(desk: &TestDesktop) -> (App, String) {
    let script = desk.dir().join("form.py");
    std::fs::write(&script, GTK_FORM).unwrap();
    let app = App(desk
        .command("/usr/bin/python3")
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap());
    let window = xdotool(desk, &["search", "--sync", "--name", "Vigil checkout"]);
    (app, window)
}
