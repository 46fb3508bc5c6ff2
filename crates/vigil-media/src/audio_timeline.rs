//! One voice track as a continuous run of 48 kHz samples indexed from the session origin.
//! Chunks are placed by their capture stamps: small jitter is absorbed, a late chunk's missing
//! time becomes digital silence (a reported gap), an overlap is dropped. This keeps A/V drift
//! within the stamp tolerance for any recording length.

use std::collections::VecDeque;

use crate::VOICE_RATE;

/// Misplacement tolerated before the timeline pads or trims (10 ms).
const TOLERANCE_SAMPLES: u64 = VOICE_RATE as u64 / 100;

pub(crate) struct AudioTimeline {
    origin_ns: u64,
    /// Index of the next sample to be appended.
    next_index: u64,
    /// Index of the first sample in `pending`.
    taken_index: u64,
    pending: VecDeque<f32>,
    /// Silence inserted since the last `take_gaps`, as sample index ranges.
    gaps: Vec<(u64, u64)>,
    /// End of the last captured (not padded) samples.
    received_until: u64,
}

pub(crate) fn ns_to_index(origin_ns: u64, ns: u64) -> u64 {
    (ns.saturating_sub(origin_ns) as u128 * VOICE_RATE as u128 / 1_000_000_000) as u64
}

pub(crate) fn index_to_ns(origin_ns: u64, index: u64) -> u64 {
    origin_ns + (index as u128 * 1_000_000_000 / VOICE_RATE as u128) as u64
}

/// Linear resampling to the voice rate (WASAPI and Core Audio run at the device's rate).
fn resample(samples: &[f32], from_rate: u32) -> Vec<f32> {
    if from_rate == VOICE_RATE || samples.is_empty() {
        return samples.to_vec();
    }
    let out_len = (samples.len() as u64 * VOICE_RATE as u64 / from_rate as u64) as usize;
    let step = from_rate as f64 / VOICE_RATE as f64;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * step;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = samples[j.min(samples.len() - 1)];
            let b = samples[(j + 1).min(samples.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

impl AudioTimeline {
    pub(crate) fn new(origin_ns: u64) -> Self {
        Self {
            origin_ns,
            next_index: 0,
            taken_index: 0,
            pending: VecDeque::new(),
            gaps: Vec::new(),
            received_until: 0,
        }
    }

    /// Places a chunk captured at `pts_ns`.
    pub(crate) fn push(&mut self, pts_ns: u64, rate: u32, samples: &[f32]) {
        let samples = resample(samples, rate);
        let mut start = if pts_ns < self.origin_ns {
            // Captured before the session began: keep only what falls after the origin.
            let before = ns_to_index(pts_ns, self.origin_ns) as usize;
            if before >= samples.len() {
                return;
            }
            (self.origin_ns, &samples[before..])
        } else {
            (pts_ns, &samples[..])
        };
        let index = ns_to_index(self.origin_ns, start.0);
        if index > self.next_index + TOLERANCE_SAMPLES {
            self.pad_to(index);
        } else if index + TOLERANCE_SAMPLES < self.next_index {
            let overlap = (self.next_index - index) as usize;
            if overlap >= start.1.len() {
                return;
            }
            start.1 = &start.1[overlap..];
        }
        self.pending.extend(start.1.iter().copied());
        self.next_index += start.1.len() as u64;
        self.received_until = self.next_index;
    }

    /// Index of the next sample to arrive: everything before it is placed.
    pub(crate) fn placed_until(&self) -> u64 {
        self.next_index
    }

    /// Index of the next sample to be taken.
    pub(crate) fn taken_until(&self) -> u64 {
        self.taken_index
    }

    /// End of the last samples the source really delivered (padding excluded).
    pub(crate) fn received_until(&self) -> u64 {
        self.received_until
    }

    /// Adds this timeline's samples from index `first` on into `mix` (clamped to [-1, 1]) and
    /// consumes them; samples before `first` are dropped, missing ones add nothing.
    pub(crate) fn mix_into(&mut self, first: u64, mix: &mut [f32]) {
        if self.taken_index < first {
            let skip = (first - self.taken_index).min(self.pending.len() as u64);
            self.pending.drain(..skip as usize);
            self.taken_index += skip;
        }
        if self.taken_index < first {
            return;
        }
        let offset = (self.taken_index - first) as usize;
        let Some(room) = mix.len().checked_sub(offset) else {
            return;
        };
        let n = room.min(self.pending.len());
        for (out, add) in mix[offset..offset + n]
            .iter_mut()
            .zip(self.pending.drain(..n))
        {
            *out = (*out + add).clamp(-1.0, 1.0);
        }
        self.taken_index += n as u64;
    }

    fn pad_to(&mut self, index: u64) {
        if index <= self.next_index {
            return;
        }
        match self.gaps.last_mut() {
            Some(last) if last.1 == self.next_index => last.1 = index,
            _ => self.gaps.push((self.next_index, index)),
        }
        self.pending
            .extend(std::iter::repeat_n(0.0, (index - self.next_index) as usize));
        self.next_index = index;
    }

    /// Declares everything before `ns` final: missing samples become silence (a gap).
    pub(crate) fn settle_until(&mut self, ns: u64) {
        self.pad_to(ns_to_index(self.origin_ns, ns));
    }

    /// Takes the samples from the last take up to `index` (or fewer if not yet there).
    pub(crate) fn take_until(&mut self, index: u64) -> (u64, Vec<f32>) {
        let first = self.taken_index;
        let n = index.min(self.next_index).saturating_sub(first) as usize;
        let out: Vec<f32> = self.pending.drain(..n).collect();
        self.taken_index += n as u64;
        (first, out)
    }

    /// Gaps (as ns ranges) inserted since the last call.
    pub(crate) fn take_gaps(&mut self) -> Vec<(u64, u64)> {
        let origin = self.origin_ns;
        self.gaps
            .drain(..)
            .map(|(a, b)| (index_to_ns(origin, a), index_to_ns(origin, b)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Samples in `ms` milliseconds at the voice rate.
    fn s(ms: u64) -> usize {
        (ms * VOICE_RATE as u64 / 1000) as usize
    }

    #[test]
    fn jitter_is_absorbed_and_holes_become_reported_silence() {
        let mut t = AudioTimeline::new(1_000 * MS);
        t.push(1_000 * MS, VOICE_RATE, &vec![0.5; s(10)]); // 0..10 ms
        t.push(1_013 * MS, VOICE_RATE, &vec![0.5; s(10)]); // 3 ms late: absorbed
        assert!(t.take_gaps().is_empty());
        t.push(1_100 * MS, VOICE_RATE, &vec![0.5; s(10)]); // a hole of 80 ms
        let gaps = t.take_gaps();
        assert_eq!(gaps, vec![(1_020 * MS, 1_100 * MS)]);
        let (first, samples) = t.take_until(u64::MAX);
        assert_eq!(first, 0);
        assert_eq!(samples.len(), s(10) * 2 + s(80) + s(10));
        assert!(samples[s(20)..s(100)].iter().all(|x| *x == 0.0));
        assert!(samples[s(100)..].iter().all(|x| *x == 0.5));
    }

    #[test]
    fn overlap_is_dropped_and_settling_pads_to_the_boundary() {
        let mut t = AudioTimeline::new(0);
        t.push(0, VOICE_RATE, &vec![0.1; s(100)]);
        t.push(50 * MS, VOICE_RATE, &vec![0.2; s(100)]); // overlaps by 50 ms
        let (_, got) = t.take_until(u64::MAX);
        assert_eq!(got.len(), s(150));
        t.settle_until(200 * MS);
        let (first, got) = t.take_until(ns_to_index(0, 200 * MS));
        assert_eq!(first as usize, s(150));
        assert_eq!(got.len(), s(50));
        assert_eq!(t.take_gaps(), vec![(150 * MS, 200 * MS)]);
    }

    #[test]
    fn other_rates_are_resampled() {
        let mut t = AudioTimeline::new(0);
        t.push(0, 44_100, &[0.3; 4410]);
        let (_, got) = t.take_until(u64::MAX);
        assert_eq!(got.len(), s(100));
    }

    #[test]
    fn a_second_source_mixes_sample_for_sample() {
        let mut main = AudioTimeline::new(0);
        let mut comms = AudioTimeline::new(0);
        main.push(0, VOICE_RATE, &vec![0.25; s(200)]);
        // The second source starts 50 ms later and runs past what the main one has.
        comms.push(50 * MS, VOICE_RATE, &vec![0.5; s(300)]);
        assert_eq!(comms.received_until() as usize, s(350));
        let (first, mut mix) = main.take_until(ns_to_index(0, 100 * MS));
        comms.mix_into(first, &mut mix);
        assert!(
            mix[..s(50)].iter().all(|x| *x == 0.25),
            "before the second source"
        );
        assert!(mix[s(50)..].iter().all(|x| *x == 0.75), "both sources");
        let (first, mut mix) = main.take_until(u64::MAX);
        comms.mix_into(first, &mut mix);
        assert_eq!(mix.len(), s(100));
        assert!(mix.iter().all(|x| *x == 0.75));
        assert_eq!(
            comms.taken_until() as usize,
            s(200),
            "the rest waits for the main track"
        );
        // Loud sources clamp instead of wrapping.
        let mut loud = vec![0.9; 4];
        let mut other = AudioTimeline::new(0);
        other.push(0, VOICE_RATE, &[0.9; 4]);
        other.mix_into(0, &mut loud);
        assert_eq!(loud, vec![1.0; 4]);
    }
}
