//! Acceptance (issue 3): a checkout page in Chromium with a labelled card field, an
//! aria-labelled security code and a card field known only by `autocomplete="cc-number"`,
//! focused by click, Tab and script, typed into, then left for the confirmation page.
//!
//! With masking on: every span starts no later than its field's focus; no frame inside a span
//! shows the fields' stripe pattern; OCR of every frame finds none of the typed digits; both
//! voice tracks are digital zero inside the spans; after the confirmation page the screen and
//! the voice come back. With masking off (the control run), the same OCR reads the digits and
//! the pattern shows: the oracles work.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use vigil_e2e::TestDesktop;

const CARD: &str = "4111111111111111";
const SECURITY_CODE: &str = "9281";
const SAVED_CARD: &str = "5555555555554444";

/// The area of the three card fields on screen (kiosk window at 0,0; see the page's layout).
const FIELDS_AREA: (u32, u32, u32, u32) = (120, 140, 640, 350);

struct Run {
    desk: TestDesktop,
    id: Identity,
    session: PathBuf,
    manifests: Vec<serde_json::Value>,
    /// Wall times (ns) of the three focus actions, and of the click on Pay.
    focused_at: [u128; 3],
    paid_at: u128,
}

fn checkout_page() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/checkout/index.html")
        .canonicalize()
        .unwrap()
}

fn click(desk: &TestDesktop, x: u32, y: u32) {
    xdotool(
        desk,
        &["mousemove", &x.to_string(), &y.to_string(), "click", "1"],
    );
}

fn type_digits(desk: &TestDesktop, digits: &str) {
    xdotool(desk, &["type", "--delay", "90", digits]);
}

fn run_checkout(masking: bool) -> Run {
    let mut desk = TestDesktop::start().unwrap();
    desk.start_accessibility().unwrap();
    let id = identity(desk.dir());
    let tone = desk.tone_wav("caller", 440, 60).unwrap();
    let speech = desk
        .speech_wav("agent", "Please read me the card number.", 60)
        .unwrap();
    let _caller = desk.play("caller", &tone).unwrap();
    let _mic = desk.play("micfeed", &speech).unwrap();
    let config = desk.dir().join("agent.toml");
    std::fs::write(
        &config,
        format!("[masking]\nfocus = {masking}\ndtmf = {masking}\n"),
    )
    .unwrap();
    let spool = desk.dir().join("spool");
    let recording = agent(&desk)
        .arg("--config")
        .arg(&config)
        .args(["record", "--for", "36", "--spool"])
        .arg(&spool)
        .args(["--recipient", &id.recipient])
        .stdout(Stdio::piped())
        .stderr(agent_log())
        .spawn()
        .unwrap();
    let url = format!("file://{}", checkout_page().display());
    let _browser = vigil_e2e::Chromium::start(&desk, &url, Path::new(AGENT)).unwrap();
    std::thread::sleep(Duration::from_secs(8));

    // Click into the labelled card field.
    let mut focused_at = [0u128; 3];
    focused_at[0] = wall_now_ns();
    click(&desk, 440, 172);
    type_digits(&desk, CARD);
    // Tab to the aria-labelled security code.
    focused_at[1] = wall_now_ns();
    xdotool(&desk, &["key", "Tab"]);
    type_digits(&desk, SECURITY_CODE);
    // The page's script focuses the autocomplete-only field.
    focused_at[2] = wall_now_ns();
    click(&desk, 1030, 452);
    type_digits(&desk, SAVED_CARD);
    // Leave the card fields for an ordinary one, then pay.
    click(&desk, 440, 592);
    xdotool(&desk, &["type", "--delay", "90", "Jane Doe"]);
    std::thread::sleep(Duration::from_secs(3));
    let paid_at = wall_now_ns();
    click(&desk, 220, 732);

    let out = recording.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let session = session_dir(&spool);
    let manifests = manifests(&session);
    Run {
        desk,
        id,
        session,
        manifests,
        focused_at,
        paid_at,
    }
}

/// Every decoded frame of segment `k` as PNG files, in order: in colour (`col_…`) and
/// binarised for OCR (`ocr_…`: dark text on white; the fields' stripes would hide it from
/// tesseract otherwise).
/// The precision of a frame's time in the recording (Matroska's default millisecond).
const MS_PRECISION: u64 = 1_000_000;

fn frame_pngs(run: &Run, k: usize, out: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let screen = run.desk.dir().join(format!("screen{k}.mkv"));
    decrypt(
        &run.id,
        &run.session.join(format!("{:06}.screen.age", k + 1)),
        &screen,
    );
    std::fs::create_dir_all(out).unwrap();
    let list = |prefix: &str| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{prefix}{k:02}_"))
            })
            .collect();
        files.sort();
        files
    };
    for (prefix, filter) in [
        ("col", "null"),
        ("ocr", "format=gray,lut=y='if(lt(val,80),0,255)'"),
    ] {
        run_ok(
            Command::new("ffmpeg")
                .args(["-v", "error", "-i"])
                .arg(&screen)
                .args(["-fps_mode", "passthrough", "-vf", filter])
                .arg(out.join(format!("{prefix}{k:02}_%05d.png"))),
        );
    }
    (list("col"), list("ocr"))
}

/// Presentation times (s) of segment `k`'s frames.
fn frame_times(run: &Run, k: usize) -> Vec<f64> {
    let screen = run.desk.dir().join(format!("screen{k}.mkv"));
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v"])
            .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
            .arg(&screen),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// Pixels of the fields' stripe pattern (magenta and green) in the fields' area of a frame.
fn pattern_pixels(png: &Path) -> usize {
    let (x, y, w, h) = FIELDS_AREA;
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(png)
            .args(["-vf", &format!("crop={w}:{h}:{x}:{y}")])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
    );
    out.stdout
        .chunks_exact(3)
        .filter(|p| {
            let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
            (r > 170 && g < 90 && b > 170) || (r < 90 && g > 170 && b < 90)
        })
        .count()
}

/// Whether a frame shows the confirmation page's cyan block.
fn shows_confirmation(png: &Path) -> bool {
    let out = run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(png)
            .args(["-vf", "crop=200:100:300:200"])
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]),
    );
    let cyan = out
        .stdout
        .chunks_exact(3)
        .filter(|p| p[0] < 60 && p[1] > 200 && p[2] > 200)
        .count();
    eprintln!("cyan pixels: {cyan}");
    cyan > 15_000
}

/// OCR of the given frames (one tesseract run over a list), spaces removed.
fn ocr(files: &[PathBuf], dir: &Path) -> String {
    let list = dir.join("ocr-list.txt");
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    std::fs::write(&list, names.join("\n")).unwrap();
    let out = run_ok(Command::new("tesseract").arg(&list).arg("stdout"));
    String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// Which typed secrets the text contains (any 6 consecutive digits of a card number, or the
/// whole security code next to nothing else numeric).
fn leaked(text: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    for number in [CARD, SAVED_CARD] {
        let hit = (0..=number.len() - 6).any(|i| text.contains(&number[i..i + 6]));
        if hit {
            found.push(number);
        }
    }
    if text.contains(SECURITY_CODE) {
        found.push(SECURITY_CODE);
    }
    found
}

/// Distinct frames (identical pictures decode to identical PNG bytes).
fn distinct(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut seen = HashSet::new();
    files
        .into_iter()
        .filter(|f| seen.insert(std::fs::read(f).unwrap()))
        .collect()
}

#[test]
fn card_fields_never_reach_the_recording() {
    // The control run: the oracles see what masking must hide.
    let control = run_checkout(false);
    let dir = control.desk.dir().join("frames");
    let mut for_ocr = Vec::new();
    let mut pattern_seen = false;
    for k in 0..control.manifests.len() {
        let (colour, binary) = frame_pngs(&control, k, &dir);
        pattern_seen |= colour.iter().any(|f| pattern_pixels(f) > 2_000);
        for_ocr.extend(binary);
    }
    assert!(pattern_seen, "control: the field pattern never shows");
    let text = ocr(&distinct(for_ocr), &dir);
    let found = leaked(&text);
    for secret in [CARD, SECURITY_CODE, SAVED_CARD] {
        assert!(
            found.contains(&secret),
            "control: OCR does not read {secret}, so it proves nothing (read: {text})"
        );
    }

    // The masked run.
    let run = run_checkout(true);
    let dir = run.desk.dir().join("frames");
    let spans: Vec<(serde_json::Value, serde_json::Value)> = run
        .manifests
        .iter()
        .flat_map(|m| {
            m["masked_spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |s| (m.clone(), s.clone()))
        })
        .collect();
    let span_wall = |m: &serde_json::Value, s: &serde_json::Value, key: &str| {
        session_to_wall(m, s[key].as_u64().unwrap())
    };
    // A span for each focus, started no later than the focus (the action plus the time the
    // browser takes to move focus, well under 250 ms).
    for (k, at) in run.focused_at.iter().enumerate() {
        let covering = spans.iter().find(|(m, s)| {
            s["screen"] != "none"
                && span_wall(m, s, "start_ns") <= at + 250_000_000
                && span_wall(m, s, "end_ns") > at + 1_000_000_000
        });
        assert!(
            covering.is_some(),
            "focus #{} at +{} ms is not covered in time; spans: {:?}",
            k + 1,
            (at - run.focused_at[0]) / 1_000_000,
            spans.iter().map(|(_, s)| s).collect::<Vec<_>>()
        );
    }
    let triggers: HashSet<String> = spans
        .iter()
        .map(|(_, s)| s["trigger"].as_str().unwrap().to_string())
        .collect();
    assert!(
        triggers.contains("extension") && triggers.contains("accessibility"),
        "both field triggers fire: {triggers:?}"
    );
    assert!(
        spans
            .iter()
            .any(|(_, s)| s["trigger"] == "extension" && s["rule_id"] == "builtin.card-number"),
        "the autocomplete-only field is masked through the extension"
    );

    // Frames: none inside a screen span shows the pattern; OCR of all finds no digit.
    let mut all = Vec::new();
    let mut confirmation_after_pay = false;
    for (k, m) in run.manifests.iter().enumerate() {
        let (files, binary) = frame_pngs(&run, k, &dir);
        let times = frame_times(&run, k);
        assert_eq!(files.len(), times.len(), "segment {}", k + 1);
        let seg_start = m["start"]["mono_ns"].as_u64().unwrap();
        for (file, t) in files.iter().zip(&times) {
            let at_ns = seg_start + (t * 1e9) as u64;
            // The file keeps times to the millisecond (cut down): the frame was captured in
            // [at, at + 1 ms). Only a frame wholly inside a span must be masked; the picture
            // shown again at a span's end is stamped with that end, which reads up to 1 ms
            // earlier here.
            let masked = spans.iter().any(|(_, s)| {
                s["screen"] != "none"
                    && s["start_ns"].as_u64().unwrap() <= at_ns
                    && at_ns + MS_PRECISION <= s["end_ns"].as_u64().unwrap()
            });
            if masked {
                let visible = pattern_pixels(file);
                if visible >= 50 {
                    // Kept for a closer look: the segment's video and the manifests.
                    let keep = std::env::temp_dir().join("vigil-checkout-failure");
                    let _ = std::fs::create_dir_all(&keep);
                    let video = run.desk.dir().join(format!("screen{k}.mkv"));
                    let _ = std::fs::copy(&video, keep.join(format!("screen{k}.mkv")));
                    let _ = std::fs::write(
                        keep.join("manifests.json"),
                        serde_json::to_string_pretty(&run.manifests).unwrap_or_default(),
                    );
                }
                assert!(
                    visible < 50,
                    "segment {} frame at {t:.2} s: {visible} pixels of a card field inside a span; \
                     spans then: {:?}",
                    k + 1,
                    spans
                        .iter()
                        .filter(|(_, s)| s["start_ns"].as_u64().unwrap() <= at_ns
                            && at_ns < s["end_ns"].as_u64().unwrap())
                        .map(|(_, s)| (
                            s["trigger"].as_str().unwrap_or("").to_string(),
                            s["reason"].as_str().unwrap_or("").to_string(),
                            s["start_ns"].as_u64().unwrap_or(0) as i128 - at_ns as i128,
                            s["decided_ns"].as_u64().unwrap_or(0) as i128 - at_ns as i128
                        ))
                        .collect::<Vec<_>>()
                );
            }
            if session_to_wall(m, at_ns) > run.paid_at + 3_000_000_000 {
                let shown = shows_confirmation(file);
                eprintln!(
                    "after pay: segment {} frame at {t:.2} s: confirmation {shown}",
                    k + 1
                );
                confirmation_after_pay |= shown;
            }
        }
        all.extend(binary);
    }
    let text = ocr(&distinct(all), &dir);
    assert!(
        leaked(&text).is_empty(),
        "OCR reads {:?} in the masked recording",
        leaked(&text)
    );
    assert!(
        confirmation_after_pay,
        "the screen did not come back on the confirmation page; spans: {:?}",
        spans.iter().map(|(_, s)| s).collect::<Vec<_>>()
    );

    // Voice: digital zero inside audio spans, the caller's tone back at the end.
    let mut checked = 0;
    for (k, m) in run.manifests.iter().enumerate() {
        let voice = run.desk.dir().join(format!("voice{k}.mka"));
        decrypt(
            &run.id,
            &run.session.join(format!("{:06}.voice.age", k + 1)),
            &voice,
        );
        let tracks = [decode_audio(&voice, 0), decode_audio(&voice, 1)];
        let seg_start = m["start"]["mono_ns"].as_u64().unwrap();
        let seg_end = m["end"]["mono_ns"].as_u64().unwrap();
        for span in m["masked_spans"].as_array().unwrap() {
            if span["audio"] != true {
                continue;
            }
            let start = span["start_ns"].as_u64().unwrap().max(seg_start);
            let end = span["end_ns"].as_u64().unwrap().min(seg_end);
            let at = |ns: u64| ((ns - seg_start) as f64 / 1e9 * 48_000.0) as usize;
            for track in &tracks {
                let inside = &track[at(start).min(track.len())..at(end).min(track.len())];
                let loudest = inside.iter().fold(0f32, |a, s| a.max(s.abs()));
                assert!(loudest < 1e-3, "segment {}: sound inside a span", k + 1);
                checked += inside.len();
            }
        }
        if k + 1 == run.manifests.len() {
            assert!(
                tone_share(&tracks[1], 440.0) > 0.5,
                "the caller is not heard again after the card fields"
            );
        }
    }
    assert!(checked > 0, "no audio span was checked");
}
