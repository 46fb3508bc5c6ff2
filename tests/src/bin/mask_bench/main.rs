//! Masking benchmark v2 (issue 11 §5): trials of every transition that card data must stay
//! masked through, on a checkout page of Vigil's own in an ordinary Chromium window with the
//! extension and AT-SPI, during one real recording with speech on both voice tracks.
//!
//! Each trial opens a fresh checkout page, clicks into the card number's field and types the
//! card number, expiry and security code with Tab between them (at once after the click in
//! half the trials, 400 ms later in the others), then goes through its transition: Tab on to
//! the street and type it; the address bar and back; the card scrolled out of view and back;
//! a reload; another page and history back; another window and back. The `stored-card` trial
//! opens a receipt that shows a stored card as text beside a 16-digit order number that fails
//! the Luhn check.
//!
//! Every decoded frame is judged, inside the manifest's spans or not: by its pixels (the card
//! fields and the stored card are tinted: ink inside a visible tint is card data on screen),
//! and, when not wholly masked, by tesseract (the typed digits, expiry and code, the stored
//! card). Printed per transition: trials, leaked frames (pixels / OCR), focus → decision
//! p50 / p99 (ms), the frames while card data was on the page that only region masks covered
//! and the share of the screen they left readable; then voice samples that sound while a card
//! field has focus, and how much of the rest carries speech.
//!
//! `cargo build --release -p vigil-agent -p vigil-e2e && ./target/release/vigil-mask-bench 100`
//! (`[trials per transition] [--only tab,scroll,…] [--fail-on-leak] [--max-p99-ms N]`)

mod judge;
mod report;
mod script;
mod segments;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vigil_e2e::bench_support::{age_identity, agent_next_to_me};
use vigil_e2e::TestDesktop;

use script::{Driver, Transition, Trial};
use segments::{segments, Segment};

/// The command line.
struct Options {
    trials: usize,
    transitions: Vec<Transition>,
    fail_on_leak: bool,
    max_p99_ms: Option<f64>,
    /// Where to keep the pictures read by OCR, their texts and the manifests, for a look.
    keep: Option<PathBuf>,
}

fn options() -> Result<Options> {
    let mut options = Options {
        trials: 100,
        transitions: Transition::ALL.to_vec(),
        fail_on_leak: false,
        max_p99_ms: None,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--only" => {
                options.transitions = args
                    .next()
                    .context("--only needs a list")?
                    .split(',')
                    .map(Transition::parse)
                    .collect::<Result<_>>()?;
            }
            "--fail-on-leak" => options.fail_on_leak = true,
            "--keep" => options.keep = Some(args.next().context("--keep needs a folder")?.into()),
            "--max-p99-ms" => {
                options.max_p99_ms = Some(args.next().context("--max-p99-ms needs ms")?.parse()?)
            }
            n => options.trials = n.parse().with_context(|| format!("argument {n:?}"))?,
        }
    }
    Ok(options)
}

/// Runs the trials during one recording; returns them with the sealed session's folder.
fn record(desk: &TestDesktop, options: &Options, key: &Path) -> Result<(Vec<Trial>, PathBuf)> {
    let agent = agent_next_to_me()?;
    let assets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets");
    let recipient = age_identity(key)?;
    let total = options.trials * options.transitions.len();
    let seconds = (total * 9 + 60) as u32;
    // Speech on both tracks: silenced samples are then not trivially zero.
    let caller = desk.speech_wav("caller", "I would like to pay by card today", seconds)?;
    let agent_voice = desk.speech_wav("agent", "Could you read me the card number", seconds)?;
    let _caller = desk.play("caller", &caller)?;
    let _agent = desk.play("micfeed", &agent_voice)?;
    let server = vigil_e2e::PageServer::start(desk, &assets)?;
    let spool = desk.dir().join("spool");
    let mut recording = desk
        .command(&agent)
        .args(["record", "--for", &seconds.to_string(), "--spool"])
        .arg(&spool)
        .args(["--recipient", &recipient])
        .stdout(Stdio::null())
        .envs(agent_log_level())
        .stderr(agent_log()?)
        .spawn()?;
    // The browser starts on the receipt: its stored card shows before the extension's host
    // has connected (the `(start)` row).
    let url = format!("http://127.0.0.1:{}/pay/receipt.html", server.port);
    let browser = vigil_e2e::Chromium::start_windowed(desk, &url, &agent)?;
    std::thread::sleep(Duration::from_secs(8));
    let driver = Driver {
        desk,
        port: server.port,
    };
    let mut trials = Vec::new();
    for n in 0..options.trials {
        for &transition in &options.transitions {
            trials.push(driver.trial(transition, n % 2 == 0)?);
        }
        if n % 10 == 9 {
            eprintln!("{} of {total} trials", trials.len());
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    // Ends the recording as Ctrl+C does: the last segment is sealed.
    Command::new("kill")
        .args(["-INT", &recording.id().to_string()])
        .status()?;
    let status = recording.wait()?;
    drop(browser);
    drop(server);
    if !status.success() {
        bail!("the recording failed: {status}");
    }
    let session = std::fs::read_dir(spool.join("sessions"))?
        .flatten()
        .next()
        .context("no session")?
        .path();
    Ok((trials, session))
}

/// `VIGIL_BENCH_AGENT_LOG=<file>`: the agent's log goes there, at debug level (where the
/// extension's reports spend their time), for a look; else nowhere.
fn agent_log() -> Result<Stdio> {
    Ok(match std::env::var_os("VIGIL_BENCH_AGENT_LOG") {
        Some(path) => std::fs::File::create(&path)
            .with_context(|| format!("agent log {}", Path::new(&path).display()))?
            .into(),
        None => Stdio::null(),
    })
}

fn agent_log_level() -> Option<(&'static str, &'static str)> {
    std::env::var_os("VIGIL_BENCH_AGENT_LOG").map(|_| {
        (
            "VIGIL_LOG",
            "info,vigil_agent=debug,vigil_agent::control::extension=trace",
        )
    })
}

/// Copies the pictures read by OCR (with their texts) and the manifests to `dir`.
fn keep_for_a_look(
    dir: &Path,
    pictures: &[PathBuf],
    texts: &[String],
    segments: &[Segment],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut index = String::new();
    for (picture, text) in pictures.iter().zip(texts) {
        let name = picture.file_name().context("picture name")?;
        std::fs::copy(picture, dir.join(name))?;
        index.push_str(&format!("{}\t{text}\n", name.to_string_lossy()));
    }
    std::fs::write(dir.join("texts.tsv"), index)?;
    let manifests: Vec<&serde_json::Value> = segments.iter().map(|s| &s.manifest).collect();
    std::fs::write(
        dir.join("manifests.json"),
        serde_json::to_vec_pretty(&manifests)?,
    )?;
    Ok(())
}

fn main() -> Result<()> {
    let options = options()?;
    let mut desk = TestDesktop::start()?;
    desk.start_accessibility()?;
    let key = desk.dir().join("key.txt");
    let (trials, session) = record(&desk, &options, &key)?;
    let segments = segments(&session)?;
    let work = desk.dir().join("judge");
    std::fs::create_dir_all(&work)?;

    // Every frame by its pixels; distinct pictures not wholly masked by OCR.
    let (mut frames, mut seen, mut to_read) = (Vec::new(), HashMap::new(), Vec::new());
    let mut voice = Vec::new();
    for seg in &segments {
        let blob = |kind: &str| session.join(format!("{:06}.{kind}.age", seg.sequence));
        if blob("screen").exists() {
            let screen = work.join("screen.mkv");
            judge::decrypt(&key, &blob("screen"), &screen)?;
            frames.extend(judge::judge_screen(
                &screen,
                seg.start_mono,
                &work,
                &mut seen,
                &mut to_read,
            )?);
        }
        let file = work.join("voice.mka");
        judge::decrypt(&key, &blob("voice"), &file)?;
        voice.push([judge::voice_track(&file, 0)?, judge::voice_track(&file, 1)?]);
    }
    eprintln!(
        "{} frames decoded, {} distinct pictures to read",
        frames.len(),
        to_read.len()
    );
    let texts = judge::read_all(&to_read, &work)?;
    if let Some(keep) = &options.keep {
        keep_for_a_look(keep, &to_read, &texts, &segments)?;
        let mut lines = String::from("transition\tstart\tfocus\tcard_done\tend (session ns)\n");
        for t in &trials {
            let mono = |wall: i128| segments[0].to_mono(wall);
            lines.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\n",
                t.transition.name(),
                mono(t.start),
                mono(t.focus),
                mono(t.card_done),
                mono(t.end)
            ));
        }
        std::fs::write(keep.join("trials.tsv"), lines)?;
    }
    let recording = report::Recording {
        segments: &segments,
        frames: &frames,
        texts: &texts,
        voice: &voice,
        trials: &trials,
    };
    let summary = recording.report(&options.transitions, options.trials);
    if options.fail_on_leak && summary.leaked_frames + summary.leaked_samples > 0 {
        bail!(
            "{} leaked frames, {} leaked samples",
            summary.leaked_frames,
            summary.leaked_samples
        );
    }
    if let Some(max) = options.max_p99_ms {
        if summary.worst_decision_p99_ms > max {
            bail!(
                "focus → decision p99 {:.1} ms is over {max} ms",
                summary.worst_decision_p99_ms
            );
        }
    }
    Ok(())
}
