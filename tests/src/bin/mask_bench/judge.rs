//! How the bench judges a recording: every decoded frame by its pixels (a tinted card field or
//! stored card with ink in it, unmasked; how much of the screen masks hid), the distinct frames
//! that are not wholly masked by OCR, and the voice tracks by their samples.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

const WIDTH: usize = 1920;
const HEIGHT: usize = 1080;
/// Masks paint black; a 16x16 block whose every pixel is this dark is masked.
const BLOCK: usize = 16;
const MASK_LUMA: u8 = 24;
/// A frame whose blocks are this share masked is wholly masked (the banner is not).
pub const WHOLE_MASK_SHARE: f64 = 0.9;
/// Dark pixels inside a tinted run that make a leak: a caret is under 100, a digit of the
/// page's 44-px bold monospace several hundred.
pub const INK_LEAK: usize = 150;

/// One decoded frame, judged by its pixels.
#[derive(Debug, Clone)]
pub struct FrameVerdict {
    /// Capture time on the session clock (monotonic ns).
    pub at_ns: u64,
    /// Dark pixels inside tinted (card) areas: card data on screen, unmasked.
    pub tinted_ink: usize,
    /// Share of the screen painted over by masks (0..1).
    pub masked_share: f64,
    /// Index into the OCR texts (frames that are not wholly masked; identical pictures share
    /// one).
    pub ocr: Option<usize>,
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd.stderr(Stdio::piped()).output()?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(out.stdout)
}

/// Decrypts one sealed blob with the bench's identity.
pub fn decrypt(key: &Path, blob: &Path, out: &Path) -> Result<()> {
    run(Command::new("age")
        .args(["-d", "-i"])
        .arg(key)
        .arg("-o")
        .arg(out)
        .arg(blob))?;
    Ok(())
}

/// Presentation times (s) of a video's frames.
fn frame_times(video: &Path) -> Result<Vec<f64>> {
    Ok(String::from_utf8_lossy(&run(Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v"])
        .args(["-show_entries", "frame=pts_time", "-of", "csv=p=0"])
        .arg(video))?)
    .lines()
    .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
    .collect())
}

/// The card tint (#ffff66) after the codec.
fn tinted(p: &[u8]) -> bool {
    p[0] > 200 && p[1] > 200 && p[2] < 170
}

/// Dark pixels of a row that lie inside tinted runs: between two tinted pixels of the same run
/// (gaps up to a glyph's width, as the digits cut the tint).
fn tinted_ink_in_row(row: &[u8]) -> usize {
    const MAX_GAP: usize = 48;
    let (mut ink, mut pending, mut last_tint) = (0, 0, None::<usize>);
    for (x, p) in row.chunks_exact(3).enumerate() {
        if tinted(p) {
            if last_tint.is_some_and(|l| x - l <= MAX_GAP) {
                ink += pending;
            }
            pending = 0;
            last_tint = Some(x);
        } else if p[0] < 90 && p[1] < 90 && p[2] < 90 {
            pending += 1;
        }
    }
    ink
}

/// Share of 16x16 blocks that are wholly mask-black.
fn masked_share(frame: &[u8]) -> f64 {
    let (bw, bh) = (WIDTH / BLOCK, HEIGHT / BLOCK);
    let mut masked = 0;
    for by in 0..bh {
        for bx in 0..bw {
            let black = (0..BLOCK).all(|dy| {
                let row = ((by * BLOCK + dy) * WIDTH + bx * BLOCK) * 3;
                frame[row..row + BLOCK * 3]
                    .chunks_exact(3)
                    .all(|p| p[0] < MASK_LUMA && p[1] < MASK_LUMA && p[2] < MASK_LUMA)
            });
            masked += usize::from(black);
        }
    }
    masked as f64 / (bw * bh) as f64
}

/// Half-size, binarised (dark text on white) picture for OCR, as PGM.
fn ocr_picture(frame: &[u8]) -> Vec<u8> {
    let (w, h) = (WIDTH / 2, HEIGHT / 2);
    let mut out = format!("P5\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let mut sum = 0u32;
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let i = ((2 * y + dy) * WIDTH + 2 * x + dx) * 3;
                let p = &frame[i..i + 3];
                sum +=
                    (299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2])) / 1000;
            }
            out.push(if sum / 4 < 110 { 0 } else { 255 });
        }
    }
    out
}

/// Every frame of one decrypted screen file, judged; new distinct pictures that are not
/// wholly masked are written to `ocr_dir` and listed in `to_read`.
pub fn judge_screen(
    screen: &Path,
    seg_start_ns: u64,
    ocr_dir: &Path,
    seen: &mut HashMap<u64, usize>,
    to_read: &mut Vec<PathBuf>,
) -> Result<Vec<FrameVerdict>> {
    let times = frame_times(screen)?;
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(screen)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
        ])
        .args(["-s", &format!("{WIDTH}x{HEIGHT}"), "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("ffmpeg")?;
    let mut pipe = BufReader::with_capacity(1 << 22, child.stdout.take().context("stdout")?);
    let mut frame = vec![0u8; WIDTH * HEIGHT * 3];
    let mut out = Vec::new();
    for t in &times {
        if pipe.read_exact(&mut frame).is_err() {
            break;
        }
        let tinted_ink = frame.chunks_exact(WIDTH * 3).map(tinted_ink_in_row).sum();
        let masked_share = masked_share(&frame);
        let ocr = if masked_share < WHOLE_MASK_SHARE {
            let picture = ocr_picture(&frame);
            let index = match seen.entry(fnv1a(&picture)) {
                std::collections::hash_map::Entry::Occupied(e) => *e.get(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let path = ocr_dir.join(format!("{:06}.pgm", to_read.len()));
                    std::fs::write(&path, &picture)?;
                    to_read.push(path);
                    *e.insert(to_read.len() - 1)
                }
            };
            Some(index)
        } else {
            None
        };
        out.push(FrameVerdict {
            at_ns: seg_start_ns + (t * 1e9) as u64,
            tinted_ink,
            masked_share,
            ocr,
        });
    }
    let _ = child.wait();
    Ok(out)
}

/// FNV-1a, 64 bits: identical pictures (a static screen) are read once.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// OCR of every picture (tesseract, page segmentation 11), whitespace removed: batches of
/// pictures per process, two processes at a time.
pub fn read_all(pictures: &[PathBuf], work: &Path) -> Result<Vec<String>> {
    const BATCH: usize = 200;
    let batches: Vec<&[PathBuf]> = pictures.chunks(BATCH).collect();
    let mut texts = vec![String::new(); pictures.len()];
    for (n, pair) in batches.chunks(2).enumerate() {
        let results: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = pair
                .iter()
                .enumerate()
                .map(|(k, batch)| scope.spawn(move || read_batch(batch, work, k)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("OCR thread"))
                .collect()
        });
        for (b, result) in results.into_iter().enumerate() {
            let first = (2 * n + b) * BATCH;
            for (k, text) in result?.into_iter().enumerate() {
                texts[first + k] = text;
            }
        }
    }
    Ok(texts)
}

fn read_batch(batch: &[PathBuf], work: &Path, k: usize) -> Result<Vec<String>> {
    let list = work.join(format!("ocr-list-{k}.txt"));
    let names: Vec<String> = batch.iter().map(|p| p.display().to_string()).collect();
    std::fs::write(&list, names.join("\n") + "\n")?;
    let out = run(Command::new("tesseract")
        .arg(&list)
        .arg("stdout")
        .args(["--psm", "11"]))?;
    // One page a picture, each ended by a form feed.
    let pages: Vec<String> = String::from_utf8_lossy(&out)
        .split('\u{c}')
        .map(|page| page.chars().filter(|c| !c.is_whitespace()).collect())
        .collect();
    if pages.len() < batch.len() {
        bail!("tesseract read {} pages of {}", pages.len(), batch.len());
    }
    Ok(pages.into_iter().take(batch.len()).collect())
}

/// Which of `secrets` a text holds: a card number when any 6 of its consecutive digits are
/// there, anything else when it is there whole.
pub fn leaked<'a>(text: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    secrets
        .iter()
        .copied()
        .filter(|secret| {
            if secret.len() >= 13 {
                (0..=secret.len() - 6).any(|i| digits.contains(&secret[i..i + 6]))
            } else {
                text.contains(secret)
            }
        })
        .collect()
}

/// One voice track of a decrypted voice file as mono 48 kHz samples.
pub fn voice_track(voice: &Path, track: usize) -> Result<Vec<f32>> {
    let pcm = run(Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(voice)
        .args(["-map", &format!("0:a:{track}"), "-ac", "1", "-ar", "48000"])
        .args(["-f", "f32le", "-"]))?;
    Ok(pcm
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Share of 20-ms blocks whose RMS shows sound (speech, not the codec's floor).
pub fn sounding_share(samples: &[f32]) -> f64 {
    let blocks: Vec<&[f32]> = samples.chunks_exact(960).collect();
    if blocks.is_empty() {
        return 0.0;
    }
    let loud = blocks
        .iter()
        .filter(|b| (b.iter().map(|s| s * s).sum::<f32>() / b.len() as f32).sqrt() > 0.01)
        .count();
    loud as f64 / blocks.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ink_counts_only_between_tinted_pixels() {
        let tint = [255u8, 255, 102];
        let (white, ink) = ([255u8, 255, 255], [0u8, 0, 0]);
        let mut row = Vec::new();
        row.extend(ink.repeat(10)); // a label left of the field: not counted
        row.extend(tint.repeat(20));
        row.extend(ink.repeat(30)); // a digit inside the field
        row.extend(tint.repeat(20));
        row.extend(white.repeat(100));
        row.extend(ink.repeat(10)); // text after the field, beyond the gap
        assert_eq!(tinted_ink_in_row(&row), 30);
    }

    #[test]
    fn a_card_number_leaks_by_six_digits_others_whole() {
        let text = "Cardnumber4000-0566";
        assert_eq!(
            leaked(text, &["4000056655665556", "7305"]),
            vec!["4000056655665556"]
        );
        assert!(leaked("Order73019465", &["4000056655665556", "11/29"]).is_empty());
    }
}
