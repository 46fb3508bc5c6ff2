//! Masking benchmark (issue 3 §6): N focus trials (default 100) on a card field in Chromium,
//! seen both by the accessibility watcher (AT-SPI) and by the browser extension, during a real
//! recording. Each trial clicks into the field, types one digit and moves to the next page.
//!
//! Prints, per trigger: trials covered by a span, the decision latency (focus event → mask
//! decision, from the manifest's `start_ns` and `decided_ns`) and the delivery latency (the
//! click → the focus event's stamp), as p50 / p99 / max; then the frames that show a typed
//! digit unmasked and the voice samples that are not digital zero while the field has focus.
//!
//! `cargo build --release -p vigil-agent -p vigil-e2e && ./target/release/vigil-mask-bench [N]`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use vigil_e2e::bench_support::{age_identity, agent_next_to_me, first_arg_or};
use vigil_e2e::TestDesktop;

/// The field's inside (without its border) on screen, and the Next button.
const FIELD: (u32, u32, u32, u32) = (130, 150, 620, 44);
const FIELD_CLICK: (u32, u32) = (440, 172);
const NEXT_CLICK: (u32, u32) = (220, 332);

fn wall_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn xdotool(desk: &TestDesktop, args: &[&str]) -> Result<()> {
    let status = desk
        .command("timeout")
        .args(["30", "xdotool"])
        .args(args)
        .status()?;
    if !status.success() {
        bail!("xdotool {args:?}: {status}");
    }
    Ok(())
}

fn click(desk: &TestDesktop, (x, y): (u32, u32)) -> Result<()> {
    xdotool(
        desk,
        &["mousemove", &x.to_string(), &y.to_string(), "click", "1"],
    )
}

fn output(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

struct Span {
    trigger: String,
    rule: String,
    start_wall: i128,
    decided_after_ns: i128,
    start_ns: u64,
    end_ns: u64,
    screen: bool,
}

struct Segment {
    manifest: serde_json::Value,
    start_mono: u64,
    start_wall: i128,
}

fn parse_wall(v: &serde_json::Value) -> Result<i128> {
    let t = time::OffsetDateTime::parse(
        v.as_str().context("wall time")?,
        &time::format_description::well_known::Rfc3339,
    )?;
    Ok(t.unix_timestamp_nanos())
}

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    format!("{:.1} / {:.1} / {:.1}", at(0.5), at(0.99), v[v.len() - 1])
}

fn main() -> Result<()> {
    let trials: usize = first_arg_or(100)?;
    let agent = agent_next_to_me()?;
    let pages = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/checkout");
    let mut desk = TestDesktop::start()?;
    desk.start_accessibility()?;
    let tone = desk.tone_wav("caller", 440, (trials as u32) * 2 + 60)?;
    let _caller = desk.play("caller", &tone)?;
    let server = vigil_e2e::PageServer::start(&desk, &pages)?;
    let port = server.port;

    let key = desk.dir().join("key.txt");
    let recipient = age_identity(&key)?;
    let spool = desk.dir().join("spool");
    let seconds = trials as u64 * 2 + 25;
    let recording = desk
        .command(&agent)
        .args(["record", "--for", &seconds.to_string(), "--spool"])
        .arg(&spool)
        .args(["--recipient", &recipient])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/trial.html?0");
    let browser = vigil_e2e::Chromium::start(&desk, &url, &agent)?;
    std::thread::sleep(Duration::from_secs(8));

    let mut actions = Vec::new();
    for _ in 0..trials {
        let at = wall_ns();
        click(&desk, FIELD_CLICK)?;
        actions.push(at);
        std::thread::sleep(Duration::from_millis(400));
        xdotool(&desk, &["type", "4"])?;
        std::thread::sleep(Duration::from_millis(400));
        actions.push(-wall_ns()); // negative: the click on Next (the field's blur)
        click(&desk, NEXT_CLICK)?;
        std::thread::sleep(Duration::from_millis(1_100));
    }
    let status = recording.wait_with_output()?.status;
    drop(browser);
    drop(server);
    if !status.success() {
        bail!("the recording failed: {status}");
    }

    // The sealed session.
    let session = std::fs::read_dir(spool.join("sessions"))?
        .flatten()
        .next()
        .context("no session")?
        .path();
    let mut manifest_files: Vec<PathBuf> = std::fs::read_dir(&session)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    manifest_files.sort();
    let mut segments = Vec::new();
    let mut spans = Vec::new();
    for file in &manifest_files {
        let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)?;
        let m = envelope["manifest"].clone();
        let start_mono = m["start"]["mono_ns"].as_u64().context("mono")?;
        let start_wall = parse_wall(&m["start"]["wall"])?;
        for s in m["masked_spans"].as_array().context("spans")? {
            let start_ns = s["start_ns"].as_u64().unwrap_or(0);
            spans.push(Span {
                trigger: s["trigger"].as_str().unwrap_or("").into(),
                rule: s["rule_id"].as_str().unwrap_or("").into(),
                start_wall: start_wall + start_ns as i128 - start_mono as i128,
                decided_after_ns: s["decided_ns"]
                    .as_u64()
                    .map_or(-1, |d| d as i128 - start_ns as i128),
                start_ns,
                end_ns: s["end_ns"].as_u64().unwrap_or(0),
                screen: s["screen"] != "none",
            });
        }
        segments.push(Segment {
            manifest: m,
            start_mono,
            start_wall,
        });
    }

    // Latencies per trigger: the first card-number span that begins within a second of a click.
    let clicks: Vec<i128> = actions.iter().copied().filter(|a| *a > 0).collect();
    let mut report = Vec::new();
    for trigger in ["accessibility", "extension"] {
        let (mut decision, mut delivery, mut covered) = (Vec::new(), Vec::new(), 0);
        for click in &clicks {
            let span = spans.iter().find(|s| {
                s.trigger == trigger
                    && s.rule == "builtin.card-number"
                    && s.start_wall >= click - 100_000_000
                    && s.start_wall <= click + 1_000_000_000
            });
            if let Some(s) = span {
                covered += 1;
                delivery.push((s.start_wall - click) as f64 / 1e6);
                if s.decided_after_ns >= 0 {
                    decision.push(s.decided_after_ns as f64 / 1e6);
                }
            }
        }
        report.push((
            trigger,
            covered,
            percentiles(decision),
            percentiles(delivery),
        ));
    }

    // Leaks: frames showing a typed digit without a screen span; voice samples that are not
    // digital zero while the field holds focus (from 50 ms after the click to the Next click).
    let (mut leaked_frames, mut frames_seen) = (0usize, 0usize);
    let (mut leaked_samples, mut samples_seen) = (0usize, 0usize);
    let (fx, fy, fw, fh) = FIELD;
    for (k, seg) in segments.iter().enumerate() {
        let screen = desk.dir().join(format!("s{k}.mkv"));
        let voice = desk.dir().join(format!("v{k}.mka"));
        for (kind, out) in [("screen", &screen), ("voice", &voice)] {
            output(
                Command::new("age")
                    .args(["-d", "-i"])
                    .arg(&key)
                    .arg("-o")
                    .arg(out)
                    .arg(session.join(format!("{:06}.{kind}.age", k + 1))),
            )?;
        }
        let times: Vec<f64> = String::from_utf8_lossy(&output(
            Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v"])
                .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
                .arg(&screen),
        )?)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
        let raw = output(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&screen)
                .args(["-fps_mode", "passthrough", "-vf"])
                .arg(format!("crop={fw}:{fh}:{fx}:{fy}"))
                .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
        )?;
        let size = (fw * fh * 3) as usize;
        for (frame, t) in raw.chunks_exact(size).zip(&times) {
            frames_seen += 1;
            let at = seg.start_mono + (t * 1e9) as u64;
            let masked = spans
                .iter()
                .any(|s| s.screen && s.start_ns <= at && at < s.end_ns);
            let ink = frame
                .chunks_exact(3)
                .filter(|p| p[0] < 70 && p[1] < 70 && p[2] < 70)
                .count();
            let stripes = frame
                .chunks_exact(3)
                .filter(|p| {
                    (p[0] > 170 && p[1] < 90 && p[2] > 170)
                        || (p[0] < 90 && p[1] > 170 && p[2] < 90)
                })
                .count();
            // The field on screen (its stripes) with a digit in it: a caret is ~90 dark pixels, a
            // typed digit several hundred. (A masked picture has no stripes; its frame at a span's
            // start is stamped at the span's start, which millisecond pts can round to before it.)
            if !masked && stripes > 2_000 && ink > 250 {
                leaked_frames += 1;
                let wall = seg.start_wall + (at - seg.start_mono) as i128;
                let nearest = actions
                    .iter()
                    .map(|a| (wall - a.abs(), *a > 0))
                    .min_by_key(|(d, _)| d.abs())
                    .unwrap_or((0, true));
                eprintln!(
                    "leaked frame: segment {} at {t:.3} s, {ink} dark pixels, {:+.0} ms from the nearest {}",
                    k + 1,
                    nearest.0 as f64 / 1e6,
                    if nearest.1 { "field click" } else { "Next click" }
                );
            }
        }
        let seg_end_wall = seg.start_wall
            + (seg.manifest["end"]["mono_ns"].as_u64().unwrap_or(0) - seg.start_mono) as i128;
        for track in 0..2 {
            let pcm = output(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&voice)
                    .args(["-map", &format!("0:a:{track}"), "-ac", "1", "-ar", "48000"])
                    .args(["-f", "f32le", "-"]),
            )?;
            let samples: Vec<f32> = pcm
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            for pair in actions.chunks(2) {
                let (focus, blur) = (pair[0] + 50_000_000, -pair[1]);
                let from = focus.max(seg.start_wall);
                let to = blur.min(seg_end_wall);
                if from >= to {
                    continue;
                }
                let index = |w: i128| ((w - seg.start_wall) as f64 / 1e9 * 48_000.0) as usize;
                let window = &samples[index(from).min(samples.len())..index(to).min(samples.len())];
                samples_seen += window.len();
                leaked_samples += window.iter().filter(|s| s.abs() > 1e-3).count();
            }
        }
    }

    println!("Masking benchmark: {trials} focus trials on a Chromium card field (2 cores)");
    println!(
        "{:<14} {:>8}   {:>28}   {:>28}",
        "trigger", "covered", "decision ms p50/p99/max", "click→event ms p50/p99/max"
    );
    for (trigger, covered, decision, delivery) in &report {
        println!("{trigger:<14} {covered:>4}/{trials:<3}   {decision:>28}   {delivery:>28}");
    }
    println!("leaked frames: {leaked_frames} of {frames_seen} decoded");
    println!("leaked samples: {leaked_samples} of {samples_seen} checked (both tracks)");
    Ok(())
}
