//! Recording benchmark (issue 2 §8): an office-like workload on the test desktop — a CRM page in
//! Chromium at 1920x1080, typing about 4 characters a second into its notes field, a scroll
//! every 15 s, a new page every 60 s, speech in both voice tracks — recorded by Vigil and, in the
//! same run with the same workload, by the ffmpeg CLI doing the same x11grab + libx264 encode
//! (same fps, preset and CRF) plus the same two Opus tracks. Prints CPU core-seconds per
//! recorded second, their ratio, peak RSS and MB per recorded hour for both.
//!
//! `cargo run --release -p vigil-e2e --bin vigil-bench -- [SECONDS]` (default 120).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_e2e::bench_support::{age_identity, agent_next_to_me, first_arg_or};
use vigil_e2e::TestDesktop;

const FPS: u32 = 5;
const PRESET: &str = "veryfast";
const CRF: u32 = 32;
const OPUS_BITRATE: &str = "16k";

struct Measure {
    cpu_s: f64,
    max_rss_kb: u64,
    bytes: u64,
}

/// Runs a command under GNU time and returns user+sys CPU seconds and peak RSS.
fn timed(desk: &TestDesktop, program: &Path, args: &[String]) -> Result<(f64, u64)> {
    let report = desk.dir().join("time.txt");
    let status = desk
        .command("/usr/bin/time")
        .args(["-f", "%U %S %M", "-o"])
        .arg(&report)
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("{} failed: {status}", program.display());
    }
    let text = std::fs::read_to_string(&report)?;
    let f: Vec<&str> = text.split_whitespace().collect();
    Ok((f[0].parse::<f64>()? + f[1].parse::<f64>()?, f[2].parse()?))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_bytes(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Types into the notes field at ~4 characters a second and scrolls every 15 s, until stopped.
fn workload(desk: &TestDesktop, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let env: Vec<(String, String)> = desk.env().to_vec();
    std::thread::spawn(move || {
        let xdo = |args: &[&str]| {
            let _ = Command::new("xdotool")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args(args)
                .status();
        };
        let text = "Customer calls about a double charge on the March invoice; refund approved, confirmation sent by email. ";
        let started = Instant::now();
        let mut next_scroll = 15.0;
        xdo(&["mousemove", "200", "520", "click", "1"]);
        for c in text.chars().cycle() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let elapsed = started.elapsed().as_secs_f64();
            if elapsed >= next_scroll {
                next_scroll += 15.0;
                xdo(&[
                    "mousemove",
                    "1400",
                    "600",
                    "click",
                    "5",
                    "click",
                    "5",
                    "click",
                    "5",
                ]);
                xdo(&["mousemove", "200", "520", "click", "1"]);
            }
            let key = if c == ' ' {
                "space".to_string()
            } else {
                c.to_string()
            };
            match c {
                ';' => xdo(&["key", "semicolon"]),
                ',' => xdo(&["key", "comma"]),
                '.' => xdo(&["key", "period"]),
                _ => xdo(&["key", &key]),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })
}

fn start_chromium(desk: &TestDesktop, page: &Path) -> Result<Child> {
    let profile = desk.dir().join("chromium-profile");
    let child = desk
        .command("chromium")
        .args(vigil_e2e::chromium::KIOSK_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting chromium")?;
    std::thread::sleep(Duration::from_secs(6));
    Ok(child)
}

fn run_case(
    desk: &TestDesktop,
    page: &Path,
    record: impl FnOnce() -> Result<(f64, u64)>,
    out: &Path,
) -> Result<Measure> {
    let mut chromium = start_chromium(desk, page)?;
    let stop = Arc::new(AtomicBool::new(false));
    let typing = workload(desk, stop.clone());
    let result = record();
    stop.store(true, Ordering::SeqCst);
    let _ = typing.join();
    let _ = chromium.kill();
    let _ = chromium.wait();
    let (cpu_s, max_rss_kb) = result?;
    Ok(Measure {
        cpu_s,
        max_rss_kb,
        bytes: dir_bytes(out),
    })
}

fn main() -> Result<()> {
    let seconds: u32 = first_arg_or(120)?;
    let agent = agent_next_to_me()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let page = root.join("assets/bench/crm.html").canonicalize()?;
    let desk = TestDesktop::start()?;
    let speech_a = desk.speech_wav("agent", "I can see the charge on your account. Let me check the invoice for you, one moment please.", seconds * 3)?;
    let speech_c = desk.speech_wav(
        "caller",
        "Yes, I was charged twice in March and I would like a refund to my card.",
        seconds * 3,
    )?;
    let _mic = desk.play("micfeed", &speech_a)?;
    let _caller = desk.play("caller", &speech_c)?;

    // Vigil.
    let key = desk.dir().join("key.txt");
    let recipient = age_identity(&key)?;
    let config = desk.dir().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[recording]\npreset = \"{PRESET}\"\ncrf = {CRF}\naudio_bitrate = 16000\nx264_params = \"{}\"\n",
            // Extra x264 options for Vigil only, for tuning experiments.
            std::env::var("VIGIL_BENCH_X264").unwrap_or_default()
        ),
    )?;
    let spool = desk.dir().join("spool");
    let vigil_args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "record".into(),
        "--for".into(),
        seconds.to_string(),
        "--fps".into(),
        FPS.to_string(),
        "--spool".into(),
        spool.display().to_string(),
        "--recipient".into(),
        recipient,
    ];
    let vigil = run_case(&desk, &page, || timed(&desk, &agent, &vigil_args), &spool)?;

    // The ffmpeg CLI: the same capture and encode.
    let cli_out = desk.dir().join("cli");
    std::fs::create_dir_all(&cli_out)?;
    let file = cli_out.join("out.mkv");
    let ffmpeg_args: Vec<String> = [
        "-v",
        "error",
        "-y",
        "-f",
        "x11grab",
        "-framerate",
        &FPS.to_string(),
        "-video_size",
        "1920x1080",
        "-draw_mouse",
        "1",
        "-i",
        desk.display(),
        "-f",
        "pulse",
        "-i",
        "mic",
        "-f",
        "pulse",
        "-i",
        "caller.monitor",
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-c:v",
        "libx264",
        "-preset",
        PRESET,
        "-crf",
        &CRF.to_string(),
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "libopus",
        "-b:a",
        OPUS_BITRATE,
        "-ac",
        "1",
        "-ar",
        "48000",
        "-application",
        "voip",
        "-t",
        &seconds.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([file.display().to_string()])
    .collect();
    let cli = run_case(
        &desk,
        &page,
        || timed(&desk, Path::new("/usr/bin/ffmpeg"), &ffmpeg_args),
        &cli_out,
    )?;

    let per_hour = |bytes: u64| bytes as f64 / seconds as f64 * 3600.0 / 1e6;
    println!("Recording benchmark: {seconds} s, 1920x1080 @ {FPS} fps, x264 {PRESET} crf {CRF}, 2 x Opus {OPUS_BITRATE} (2 cores)");
    println!(
        "{:<12} {:>22} {:>14} {:>16}",
        "", "CPU core-s / rec. s", "peak RSS MB", "MB per hour"
    );
    for (name, m) in [("vigil", &vigil), ("ffmpeg CLI", &cli)] {
        println!(
            "{:<12} {:>22.4} {:>14.1} {:>16.1}",
            name,
            m.cpu_s / seconds as f64,
            m.max_rss_kb as f64 / 1024.0,
            per_hour(m.bytes)
        );
    }
    println!(
        "ratio vigil/cli: CPU {:.2}, size {:.2}",
        vigil.cpu_s / cli.cpu_s,
        vigil.bytes as f64 / cli.bytes as f64
    );
    Ok(())
}
