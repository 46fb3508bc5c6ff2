//! DTMF detection (Goertzel, with ITU-T Q.24 tolerances) on a voice track, so that digits keyed
//! on a phone (card numbers typed into an IVR, PINs) never reach a recording. The detector
//! reports *when* tones sound, never *which* digits: the digits are the data being protected.

/// Row (low group) frequencies, Hz.
const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies, Hz.
const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Analysis block: 20 ms. Two consecutive blocks with the same pair (40 ms, Q.24's minimum
/// accepted duration) make a tone; a single block (< 23 ms) never does.
const BLOCK_MS: u64 = 20;
/// The tone pair must hold this share of the block's power (speech spreads its power). Low
/// enough that tones keyed while the caller still talks are caught (the recording test plays
/// speech under the tones): a false alarm silences a moment of voice, a miss leaks a digit.
const MIN_PAIR_SHARE: f64 = 0.45;
/// Twist limits: high group may be up to 4 dB above or 8 dB below the low group.
const MAX_FORWARD_TWIST: f64 = 2.512; // +4 dB
const MAX_REVERSE_TWIST: f64 = 6.310; // −8 dB
/// Weakest block accepted (RMS ≈ −46 dBFS).
const MIN_RMS: f64 = 0.005;

/// A span in which DTMF tones sounded, on the session clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneSpan {
    /// Start of the first block of the tone.
    pub start_ns: u64,
    /// End of the last block of the tone.
    pub end_ns: u64,
}

/// A streaming DTMF detector for one mono track.
pub struct DtmfDetector {
    rate: u32,
    block: usize,
    buffer: Vec<f32>,
    /// Time of `buffer[0]`.
    buffer_start_ns: Option<u64>,
    /// (pair, block start) of the previous block, when it held a pair.
    previous: Option<((usize, usize), u64)>,
    /// The tone being heard: its start, and the end of its last block.
    current: Option<ToneSpan>,
}

fn goertzel_power(samples: &[f32], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// Which (low, high) pair a block carries, if it is a clean DTMF block.
fn classify(block: &[f32], rate: f64) -> Option<(usize, usize)> {
    let n = block.len() as f64;
    let energy: f64 = block.iter().map(|x| (*x as f64) * (*x as f64)).sum();
    if (energy / n).sqrt() < MIN_RMS {
        return None;
    }
    let low: Vec<f64> = LOW
        .iter()
        .map(|f| goertzel_power(block, *f, rate))
        .collect();
    let high: Vec<f64> = HIGH
        .iter()
        .map(|f| goertzel_power(block, *f, rate))
        .collect();
    let pick = |p: &[f64]| {
        let (i, best) = p
            .iter()
            .enumerate()
            .fold((0, 0.0f64), |a, (i, v)| if *v > a.1 { (i, *v) } else { a });
        // Every other tone of the group at least 8 dB below the strongest.
        let clean = p.iter().enumerate().all(|(j, v)| j == i || *v * 6.3 < best);
        clean.then_some((i, best))
    };
    let ((li, lp), (hi, hp)) = (pick(&low)?, pick(&high)?);
    // Goertzel power of a sine of amplitude A over n samples is ≈ (A·n/2)²; its share of the
    // block energy (A²·n/2) is power · 2 / (n · energy).
    let share = (lp + hp) * 2.0 / (n * energy);
    let twist = hp / lp;
    (share >= MIN_PAIR_SHARE && (1.0 / MAX_REVERSE_TWIST..=MAX_FORWARD_TWIST).contains(&twist))
        .then_some((li, hi))
}

impl DtmfDetector {
    /// A detector for a track at `rate` samples per second.
    pub fn new(rate: u32) -> Self {
        Self {
            rate,
            block: (rate as u64 * BLOCK_MS / 1000) as usize,
            buffer: Vec::new(),
            buffer_start_ns: None,
            previous: None,
            current: None,
        }
    }

    fn ns(&self, samples: usize) -> u64 {
        samples as u64 * 1_000_000_000 / self.rate as u64
    }

    /// Feeds samples whose first one was captured at `pts_ns`. Returns tones that ended (their
    /// span is final) and, separately, the tone still sounding (its span so far), so that a mask
    /// can start while the tone lasts.
    pub fn push(&mut self, pts_ns: u64, samples: &[f32]) -> (Vec<ToneSpan>, Option<ToneSpan>) {
        let mut ended = Vec::new();
        let expected = self.buffer_start_ns.map(|s| s + self.ns(self.buffer.len()));
        // A discontinuity (gap, resync) restarts the analysis at the new position.
        if expected.is_none_or(|e| e.abs_diff(pts_ns) > self.ns(self.block) / 2) {
            self.buffer.clear();
            self.buffer_start_ns = Some(pts_ns);
            self.previous = None;
        }
        self.buffer.extend_from_slice(samples);
        while self.buffer.len() >= self.block {
            let start = self.buffer_start_ns.expect("set above");
            let pair = classify(&self.buffer[..self.block], self.rate as f64);
            let end = start + self.ns(self.block);
            match (pair, self.previous) {
                (Some(p), Some((q, prev_start))) if p == q => {
                    let span = self.current.get_or_insert(ToneSpan {
                        start_ns: prev_start,
                        end_ns: end,
                    });
                    span.end_ns = end;
                }
                _ => {
                    if pair.is_none() {
                        ended.extend(self.current.take());
                    }
                }
            }
            self.previous = pair.map(|p| (p, start));
            self.buffer.drain(..self.block);
            self.buffer_start_ns = Some(end);
        }
        (ended, self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 16_000;
    const MS: u64 = 1_000_000;

    fn tone(freqs: &[f64], ms: u64, amp: f32) -> Vec<f32> {
        (0..(RATE as u64 * ms / 1000))
            .map(|i| {
                let t = i as f64 / RATE as f64;
                freqs
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f * t).sin() as f32 * amp)
                    .sum()
            })
            .collect()
    }

    fn run(signal: &[f32]) -> Vec<ToneSpan> {
        let mut d = DtmfDetector::new(RATE);
        let mut spans = Vec::new();
        for (k, chunk) in signal.chunks(1600).enumerate() {
            spans.extend(d.push(k as u64 * 100 * MS, chunk).0);
        }
        spans.extend(
            d.push(
                signal.len() as u64 * 1_000_000_000 / RATE as u64,
                &vec![0.0; 3200],
            )
            .0,
        );
        spans
    }

    #[test]
    fn every_digit_is_heard_and_placed_in_time() {
        for low in LOW {
            for high in HIGH {
                let mut s = vec![0.0; 3200]; // 200 ms silence
                s.extend(tone(&[low, high], 100, 0.3));
                s.extend(vec![0.0; 3200]);
                let spans = run(&s);
                assert_eq!(spans.len(), 1, "{low}+{high}");
                let span = spans[0];
                assert!(
                    span.start_ns >= 180 * MS && span.start_ns <= 220 * MS,
                    "{span:?}"
                );
                assert!(
                    span.end_ns >= 280 * MS && span.end_ns <= 320 * MS,
                    "{span:?}"
                );
            }
        }
    }

    #[test]
    fn short_blips_single_tones_and_off_frequency_pairs_are_rejected() {
        // 20 ms: shorter than Q.24's 23 ms rejection limit.
        let mut s = vec![0.0; 3200];
        s.extend(tone(&[770.0, 1336.0], 20, 0.3));
        s.extend(vec![0.0; 3200]);
        assert!(run(&s).is_empty());
        // A single 440 Hz tone and a lone low-group tone.
        assert!(run(&tone(&[440.0], 500, 0.3)).is_empty());
        assert!(run(&tone(&[852.0], 500, 0.3)).is_empty());
        // 5 % off both frequencies (Q.24: reject beyond 3.5 %).
        assert!(run(&tone(&[770.0 * 1.05, 1336.0 * 1.05], 200, 0.3)).is_empty());
    }

    #[test]
    fn a_pair_under_speech_like_noise_is_still_heard() {
        let mut s = tone(&[852.0, 1477.0], 120, 0.3);
        let mut seed = 7u32;
        for x in s.iter_mut() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *x += ((seed >> 16) as f32 / 32768.0 - 1.0) * 0.02;
        }
        assert_eq!(run(&s).len(), 1);
    }
}
