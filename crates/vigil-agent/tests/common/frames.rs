//! Every decoded frame of a recording, with its session-clock time and the screen spans in
//! force then, and OCR of frames: what the masking tests judge a recording by.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{decrypt, run_ok, Identity};

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The colour picture (PNG).
    pub png: PathBuf,
    /// Binarised for OCR (dark text on white).
    pub ocr_png: PathBuf,
    /// Capture time on the session clock.
    pub at_ns: u64,
    /// Index of its segment (0-based).
    pub segment: usize,
}

/// A screen span of a manifest: (start, end, screen kind, trigger, rule id).
#[derive(Debug, Clone)]
pub struct ScreenSpan {
    pub start_ns: u64,
    pub end_ns: u64,
    pub screen: String,
    pub trigger: String,
    pub rule_id: Option<String>,
    /// Why it masks (the manifest's words: "position unknown", "moving", …).
    pub reason: String,
}

/// Every screen span (screen not `none`) of the manifests.
pub fn screen_spans(manifests: &[serde_json::Value]) -> Vec<ScreenSpan> {
    manifests
        .iter()
        .flat_map(|m| m["masked_spans"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["screen"] != "none")
        .map(|s| ScreenSpan {
            start_ns: s["start_ns"].as_u64().unwrap(),
            end_ns: s["end_ns"].as_u64().unwrap(),
            screen: s["screen"].as_str().unwrap().to_string(),
            trigger: s["trigger"].as_str().unwrap_or_default().to_string(),
            rule_id: s["rule_id"].as_str().map(str::to_string),
            reason: s["reason"].as_str().unwrap_or_default().to_string(),
        })
        .collect()
}

/// The screen spans in force at `at_ns`.
pub fn spans_at(spans: &[ScreenSpan], at_ns: u64) -> Vec<&ScreenSpan> {
    spans
        .iter()
        .filter(|s| s.start_ns <= at_ns && at_ns < s.end_ns)
        .collect()
}

/// Decodes every frame of every segment of `session` into `out` (colour and binarised PNGs),
/// with its capture time.
pub fn decode_all(
    id: &Identity,
    session: &Path,
    manifests: &[serde_json::Value],
    out: &Path,
) -> Vec<Frame> {
    std::fs::create_dir_all(out).unwrap();
    let mut frames = Vec::new();
    for (k, m) in manifests.iter().enumerate() {
        let blob = session.join(format!("{:06}.screen.age", m["sequence"].as_u64().unwrap()));
        if !blob.exists() {
            continue; // a voice-only segment
        }
        let screen = out.join(format!("screen{k}.mkv"));
        decrypt(id, &blob, &screen);
        for (prefix, filter) in [
            ("col", "null"),
            ("ocr", "format=gray,lut=y='if(lt(val,110),0,255)'"),
        ] {
            run_ok(
                Command::new("ffmpeg")
                    .args(["-v", "error", "-i"])
                    .arg(&screen)
                    .args(["-fps_mode", "passthrough", "-vf", filter])
                    .arg(out.join(format!("{prefix}{k:03}_%05d.png"))),
            );
        }
        let times = frame_times(&screen);
        let seg_start = m["start"]["mono_ns"].as_u64().unwrap();
        for (i, t) in times.iter().enumerate() {
            let name = |prefix: &str| out.join(format!("{prefix}{k:03}_{:05}.png", i + 1));
            frames.push(Frame {
                png: name("col"),
                ocr_png: name("ocr"),
                at_ns: seg_start + (t * 1e9) as u64,
                segment: k,
            });
        }
    }
    frames
}

/// Presentation times (s) of a video file's frames.
pub fn frame_times(video: &Path) -> Vec<f64> {
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v"])
            .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
            .arg(video),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// OCR of one picture, whitespace removed.
pub fn ocr(png: &Path) -> String {
    let out = run_ok(
        Command::new("tesseract")
            .arg(png)
            .arg("stdout")
            .arg("--psm")
            .arg("11"),
    );
    String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// OCR of many pictures, one result each, on two threads (tesseract is single-threaded here).
pub fn ocr_each(pngs: &[PathBuf]) -> Vec<String> {
    let half = pngs.len().div_ceil(2);
    let (a, b) = pngs.split_at(half);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| a.iter().map(|p| ocr(p)).collect::<Vec<_>>());
        let mut rest: Vec<String> = b.iter().map(|p| ocr(p)).collect();
        let mut out = first.join().unwrap();
        out.append(&mut rest);
        out
    })
}

/// Which of `secrets` the text holds: a card number when any 6 of its consecutive digits are
/// there, anything else when it is there whole.
pub fn leaked<'a>(text: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    let digits_only: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '/')
        .collect();
    secrets
        .iter()
        .copied()
        .filter(|secret| {
            if secret.len() >= 13 {
                (0..=secret.len() - 6).any(|i| digits_only.contains(&secret[i..i + 6]))
            } else {
                text.contains(secret)
            }
        })
        .collect()
}

/// The distinct frames of `all` and what OCR reads in each.
pub fn ocr_distinct(all: &[Frame]) -> (Vec<Frame>, Vec<String>) {
    let distinct = distinct(all);
    let texts = ocr_frames(&distinct);
    (distinct, texts)
}

/// What OCR reads in every frame of `all`, given the OCR of its distinct pictures (as
/// [`ocr_distinct`] returns them): identical pictures read alike, and a still screen is many
/// frames of one picture, which a count of frames must count many times.
pub fn texts_of_every(all: &[Frame], distinct: &[Frame], texts: &[String]) -> Vec<String> {
    let digest = |f: &Frame| {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::fs::read(&f.png).unwrap().hash(&mut h);
        h.finish()
    };
    let by_picture: std::collections::HashMap<u64, &String> =
        distinct.iter().map(digest).zip(texts).collect();
    all.iter()
        .map(|f| {
            by_picture
                .get(&digest(f))
                .map_or_else(String::new, |t| (*t).clone())
        })
        .collect()
}

/// What OCR reads in each frame (its binarised picture).
pub fn ocr_frames(frames: &[Frame]) -> Vec<String> {
    let pngs: Vec<PathBuf> = frames.iter().map(|f| f.ocr_png.clone()).collect();
    ocr_each(&pngs)
}

/// Distinct pictures (identical frames decode to identical PNG bytes), keeping the first.
pub fn distinct(frames: &[Frame]) -> Vec<Frame> {
    let mut seen = std::collections::HashSet::new();
    frames
        .iter()
        .filter(|f| seen.insert(std::fs::read(&f.png).unwrap()))
        .cloned()
        .collect()
}

/// A screenshot of the whole desktop now (ImageMagick's `import`), for oracles: what the
/// screen showed, unmasked.
pub fn screenshot(desk: &vigil_e2e::TestDesktop, out: &Path) -> PathBuf {
    let png = out.with_extension("png");
    run_ok(desk.command("import").args(["-window", "root"]).arg(&png));
    let binary = out.with_extension("ocr.png");
    run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-i"])
            .arg(&png)
            .args(["-vf", "format=gray,lut=y='if(lt(val,110),0,255)'"])
            .arg(&binary),
    );
    binary
}
