//! The bench's figures: per transition, leaked frames, focus → decision latency and what
//! region masks left readable; per trigger, coverage and latency; the voice tracks.

use crate::judge::{self, FrameVerdict, WHOLE_MASK_SHARE};
use crate::script::{Transition, Trial, CARD, CODE, EXPIRY, ORDER_NUMBER, STORED_CARD};
use crate::segments::Segment;

const MS: i128 = 1_000_000;

/// What was recorded and judged.
pub struct Recording<'a> {
    pub segments: &'a [Segment],
    pub frames: &'a [FrameVerdict],
    pub texts: &'a [String],
    /// Per segment: the microphone's and the caller's samples (48 kHz).
    pub voice: &'a [[Vec<f32>; 2]],
    pub trials: &'a [Trial],
}

/// The totals the command line can fail on.
pub struct Summary {
    pub leaked_frames: usize,
    pub leaked_samples: usize,
    pub worst_decision_p99_ms: f64,
}

/// A screen or voice span of a manifest, on the session clock.
struct Span {
    start: i128,
    end: i128,
    decided: Option<i128>,
    trigger: String,
    rule: String,
    reason: String,
    screen: String,
    audio: bool,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

fn p50_p99(mut v: Vec<f64>) -> (String, f64) {
    if v.is_empty() {
        return ("-".into(), 0.0);
    }
    v.sort_by(f64::total_cmp);
    let p99 = percentile(&v, 0.99);
    (format!("{:.1} / {:.1}", percentile(&v, 0.5), p99), p99)
}

impl Recording<'_> {
    fn spans(&self) -> Vec<Span> {
        self.segments
            .iter()
            .flat_map(|s| {
                s.manifest["masked_spans"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|s| Span {
                start: s["start_ns"].as_u64().unwrap_or(0) as i128,
                end: s["end_ns"].as_u64().unwrap_or(0) as i128,
                decided: s["decided_ns"].as_u64().map(i128::from),
                trigger: s["trigger"].as_str().unwrap_or("").into(),
                rule: s["rule_id"].as_str().unwrap_or("").into(),
                reason: s["reason"].as_str().unwrap_or("").into(),
                screen: s["screen"].as_str().unwrap_or("").into(),
                audio: s["audio"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// A wall time on the session clock (segments share it; the first one maps it).
    fn mono(&self, wall: i128) -> i128 {
        self.segments[0].to_mono(wall)
    }

    /// The trial a session-clock time falls in: from its page being asked for to the next's.
    fn trial_at(&self, at: i128) -> Option<&Trial> {
        // Trials run one after the other: their starts are sorted.
        let after = self.trials.partition_point(|t| self.mono(t.start) <= at);
        after.checked_sub(1).map(|i| &self.trials[i])
    }

    fn leaks(&self, frame: &FrameVerdict) -> (bool, Vec<&'static str>) {
        let text = frame.ocr.map_or("", |i| self.texts[i].as_str());
        (
            frame.tinted_ink >= judge::INK_LEAK,
            judge::leaked(text, &[CARD, EXPIRY, CODE, STORED_CARD]),
        )
    }

    pub fn report(&self, transitions: &[Transition], per_transition: usize) -> Summary {
        let spans = self.spans();
        let mut summary = Summary {
            leaked_frames: 0,
            leaked_samples: 0,
            worst_decision_p99_ms: 0.0,
        };
        println!(
            "Masking benchmark v2: {per_transition} trials per transition, Chromium with the \
             extension and AT-SPI, {} frames decoded",
            self.frames.len()
        );
        println!(
            "{:<13} {:>6} {:>14} {:>16} {:>22} {:>14} {:>24}",
            "transition",
            "trials",
            "leaked frames",
            "(pixels / OCR)",
            "focus→decision ms",
            "region-only",
            "readable beside masks"
        );
        println!(
            "{:<13} {:>6} {:>14} {:>16} {:>22} {:>14} {:>24}",
            "", "", "", "", "p50 / p99", "frames", "mean / min"
        );
        for &transition in transitions {
            let row = self.transition_row(transition, &spans);
            summary.leaked_frames += row.leaked;
            summary.worst_decision_p99_ms = summary.worst_decision_p99_ms.max(row.p99);
            println!(
                "{:<13} {:>6} {:>14} {:>16} {:>22} {:>14} {:>24}",
                transition.name(),
                row.trials,
                row.leaked,
                format!("{} / {}", row.by_pixels, row.by_ocr),
                row.decision,
                format!("{} of {}", row.region_only, row.card_frames),
                row.readable,
            );
            if let Some(note) = row.note {
                println!("{:<13} {note}", "");
            }
        }
        let before: Vec<&FrameVerdict> = self
            .frames
            .iter()
            .filter(|f| self.trial_at(f.at_ns as i128).is_none())
            .collect();
        let before_leaks = before
            .iter()
            .filter(|f| {
                let (pixels, ocr) = self.leaks(f);
                let leaked = pixels || !ocr.is_empty();
                if leaked {
                    eprintln!(
                        "LEAK at browser start: ink {}, OCR {ocr:?}, masked {:.0}%",
                        f.tinted_ink,
                        f.masked_share * 100.0
                    );
                    explain(f.at_ns as i128, &spans);
                }
                leaked
            })
            .count();
        summary.leaked_frames += before_leaks;
        println!(
            "{:<13} {:>6} {:>14}   (browser start, before the first trial: {} frames)",
            "(start)",
            "",
            before_leaks,
            before.len()
        );
        self.trigger_rows(&spans);
        summary.leaked_samples = self.voice_rows(&spans);
        summary
    }
}

/// The spans within 2 s of a leaked frame at `at`, to stderr.
fn explain(at: i128, spans: &[Span]) {
    eprintln!("  frame at {at} ns (session clock); spans within 2 s:");
    for s in spans
        .iter()
        .filter(|s| s.start <= at + 2_000 * MS && at < s.end + 2_000 * MS)
    {
        eprintln!(
            "  span {:+.0}..{:+.0} ms (decided {:+.0}) {} {} {}",
            (s.start - at) as f64 / 1e6,
            (s.end - at) as f64 / 1e6,
            s.decided.map_or(f64::NAN, |d| (d - at) as f64 / 1e6),
            s.trigger,
            s.rule,
            s.screen
        );
    }
}

/// One line of the per-transition table.
struct Row {
    trials: usize,
    leaked: usize,
    by_pixels: usize,
    by_ocr: usize,
    decision: String,
    p99: f64,
    card_frames: usize,
    region_only: usize,
    readable: String,
    note: Option<String>,
}

impl Recording<'_> {
    fn transition_row(&self, transition: Transition, spans: &[Span]) -> Row {
        let trials: Vec<&Trial> = self
            .trials
            .iter()
            .filter(|t| t.transition == transition)
            .collect();
        let (mut leaked, mut by_pixels, mut by_ocr) = (0, 0, 0);
        let (mut card_frames, mut region_only, mut shares) = (0, 0, Vec::new());
        let (mut street_frames, mut street_read) = (0, 0);
        let mut order_read = std::collections::HashSet::new();
        for frame in self.frames {
            let at = frame.at_ns as i128;
            let Some(trial) = self.trial_at(at).filter(|t| t.transition == transition) else {
                continue;
            };
            let (pixels, ocr) = self.leaks(frame);
            if pixels || !ocr.is_empty() {
                leaked += 1;
                by_pixels += usize::from(pixels);
                by_ocr += usize::from(!ocr.is_empty());
                eprintln!(
                    "LEAK {} (typed {}): {:+.0} ms after focus, {:+.0} ms after the \
                     transition; ink {}, OCR {ocr:?}, masked {:.0}%",
                    transition.name(),
                    if trial.typed_at_once {
                        "at once"
                    } else {
                        "after a pause"
                    },
                    (at - self.mono(trial.focus)) as f64 / 1e6,
                    (at - self.mono(trial.transition_at)) as f64 / 1e6,
                    frame.tinted_ink,
                    frame.masked_share * 100.0
                );
                explain(at, spans);
            }
            let text = frame.ocr.map_or("", |i| self.texts[i].as_str());
            if transition == Transition::Text {
                let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                if digits.contains(&ORDER_NUMBER[4..12]) {
                    order_read.insert(trial.start);
                }
            }
            // Card data on the page: after the card was typed, to the end of the trial.
            if at < self.mono(trial.transition_at) || at > self.mono(trial.end) {
                continue;
            }
            card_frames += 1;
            let now: Vec<&Span> = spans
                .iter()
                .filter(|s| s.screen != "none" && s.start <= at && at < s.end)
                .collect();
            if !now.is_empty()
                && now.iter().all(|s| s.screen == "region")
                && frame.masked_share < WHOLE_MASK_SHARE
            {
                region_only += 1;
                shares.push(1.0 - frame.masked_share);
                if transition == Transition::Tab && at > self.mono(trial.transition_at) + 1_000 * MS
                {
                    street_frames += 1;
                    street_read += usize::from(text.contains("HARBOUR"));
                }
            }
        }
        let (decision, p99) = p50_p99(
            trials
                .iter()
                .filter_map(|t| self.decision_ms(t, spans))
                .collect(),
        );
        let readable = if shares.is_empty() {
            "-".into()
        } else {
            format!(
                "{:.0}% / {:.0}%",
                shares.iter().sum::<f64>() / shares.len() as f64 * 100.0,
                shares.iter().copied().fold(1.0, f64::min) * 100.0
            )
        };
        let note = match transition {
            Transition::Tab => Some(format!(
                "street typed after the card read by OCR in {street_read} of {street_frames} \
                 region-only frames"
            )),
            Transition::Text => Some(format!(
                "16-digit order number (fails Luhn) read by OCR in {} of {} trials",
                order_read.len(),
                trials.len()
            )),
            _ => None,
        };
        Row {
            trials: trials.len(),
            leaked,
            by_pixels,
            by_ocr,
            decision,
            p99,
            card_frames,
            region_only,
            readable,
            note,
        }
    }

    /// Focus → decision: from the earliest stamp any trigger gave the focus (for the stored
    /// card: the earliest moment a trigger dates the card text to) to the first decision that
    /// masks it, whichever trigger made it. The agent masks as soon as one trigger decides;
    /// each trigger's own latency is in the per-trigger table.
    fn decision_ms(&self, trial: &Trial, spans: &[Span]) -> Option<f64> {
        let (from, rule, reason) = if trial.transition == Transition::Text {
            (
                self.mono(trial.start),
                "builtin.card-text",
                // On screen, moving, or position unknown: any of them masks it.
                "card data",
            )
        } else {
            (
                self.mono(trial.focus),
                "builtin.card-number",
                "sensitive field focused",
            )
        };
        let raised: Vec<&Span> = spans
            .iter()
            .filter(|s| s.rule == rule && s.reason.starts_with(reason))
            // A sweep masks the whole screen from a lead *before* the sighting (the page may
            // have painted it a little earlier): extra margin, not the time a trigger gave.
            .filter(|s| !s.reason.starts_with("card data moving"))
            .filter(|s| s.start >= from - 100 * MS && s.start <= from + 3_000 * MS)
            .filter(|s| s.trigger == "extension" || s.trigger == "accessibility")
            // Not the continuation of a span in the next segment (decided before it starts).
            .filter(|s| s.decided.is_some_and(|d| d >= s.start))
            .collect();
        let first = raised.iter().map(|s| s.start).min()?;
        // The spans of this focus (or sighting): those that start within 500 ms of the first.
        let decided = raised
            .iter()
            .filter(|s| s.start < first + 500 * MS)
            .filter_map(|s| s.decided)
            .min()?;
        if std::env::var_os("VIGIL_BENCH_VERBOSE").is_some() {
            for s in &raised {
                eprintln!(
                    "{} trial at {:.3} s: {} span {:+.1} ms after the click, decided {:+.1} ms \
                     after its start",
                    trial.transition.name(),
                    from as f64 / 1e9,
                    s.trigger,
                    (s.start - from) as f64 / 1e6,
                    s.decided.map_or(f64::NAN, |d| (d - s.start) as f64 / 1e6)
                );
            }
        }
        Some((decided.max(first) - first) as f64 / 1e6)
    }

    /// Per trigger: trials whose click it covered, decision and click → event latency.
    fn trigger_rows(&self, spans: &[Span]) {
        let typed: Vec<&Trial> = self.trials.iter().filter(|t| t.focus != 0).collect();
        println!(
            "{:<14} {:>9} {:>22} {:>22}",
            "trigger", "covered", "decision ms p50/p99", "click→event ms p50/p99"
        );
        for trigger in ["accessibility", "extension"] {
            let (mut covered, mut decision, mut delivery) = (0, Vec::new(), Vec::new());
            for trial in &typed {
                let focus = self.mono(trial.focus);
                let span = spans
                    .iter()
                    .filter(|s| s.trigger == trigger && s.rule == "builtin.card-number")
                    .filter(|s| s.reason.starts_with("sensitive field focused"))
                    .filter(|s| s.start >= focus - 100 * MS && s.start <= focus + 1_000 * MS)
                    .min_by_key(|s| s.start);
                if let Some(s) = span {
                    covered += 1;
                    delivery.push((s.start - focus) as f64 / 1e6);
                    if let Some(d) = s.decided {
                        decision.push((d - s.start) as f64 / 1e6);
                    }
                }
            }
            println!(
                "{trigger:<14} {:>9} {:>22} {:>22}",
                format!("{covered}/{}", typed.len()),
                p50_p99(decision).0,
                p50_p99(delivery).0
            );
        }
    }

    /// Voice samples that sound while a card field has focus (leaks), and the share of the
    /// rest, outside every audio span, that carries speech. Returns the leaked samples.
    fn voice_rows(&self, spans: &[Span]) -> usize {
        let (mut leaked, mut checked) = (0usize, 0usize);
        let mut outside: [Vec<f32>; 2] = [Vec::new(), Vec::new()];
        for (seg, tracks) in self.segments.iter().zip(self.voice) {
            let index = |mono: i128| {
                (((mono - seg.start_mono as i128).max(0) as f64) / 1e9 * 48_000.0) as usize
            };
            for (track, samples) in tracks.iter().enumerate() {
                let (seg_from, seg_to) = (seg.start_mono as i128, seg.end_mono as i128);
                for trial in self.trials.iter().filter(|t| t.focus != 0) {
                    // The part of the focus window inside this segment.
                    let from = (self.mono(trial.focus) + 50 * MS).max(seg_from);
                    let to = self.mono(trial.card_done).min(seg_to);
                    let (from, to) = (index(from).min(samples.len()), index(to).min(samples.len()));
                    if from < to {
                        checked += to - from;
                        leaked += samples[from..to].iter().filter(|s| s.abs() > 1e-3).count();
                    }
                }
                // Outside audio spans (with 200 ms either side for the codec's smear).
                let mut keep = vec![true; samples.len()];
                for s in spans.iter().filter(|s| s.audio) {
                    let from = index(s.start - 200 * MS).min(samples.len());
                    let to = index(s.end + 200 * MS).min(samples.len());
                    keep[from..to.max(from)].iter_mut().for_each(|k| *k = false);
                }
                outside[track].extend(
                    samples
                        .iter()
                        .zip(&keep)
                        .filter(|(_, k)| **k)
                        .map(|(s, _)| *s),
                );
            }
        }
        println!(
            "voice: {leaked} of {checked} samples sound while a card field has focus (both \
             tracks); outside masks, speech in {:.0}% (microphone) and {:.0}% (caller) of \
             20-ms blocks",
            judge::sounding_share(&outside[0]) * 100.0,
            judge::sounding_share(&outside[1]) * 100.0
        );
        leaked
    }
}
