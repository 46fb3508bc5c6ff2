//! The masking stage's wiring: trigger events and DTMF detection turn into spans of the media
//! stage's mask timeline, before the delay line releases the media they cover.

use std::collections::HashMap;

use vigil_capture::{AudioChunk, AudioRole};
use vigil_mask::{
    DtmfDetector, MaskCommand, MaskController, ScreenMask, ToneSpan, TriggerEvent, TriggerSource,
};
use vigil_media::{MaskSpan, MaskTimeline};

/// How long audio stays silent after the last DTMF tone.
const DTMF_TAIL_NS: u64 = 1_500_000_000;
/// Audio silenced before a tone's detected start (its onset, which the detector cannot see).
const DTMF_LEAD_NS: u64 = 40_000_000;

/// Masking state of one recording session.
pub(crate) struct Masking {
    controller: MaskController,
    /// Controller keys → timeline indexes.
    spans: HashMap<u64, usize>,
    dtmf: Option<HashMap<AudioRole, (DtmfDetector, Option<usize>)>>,
}

impl Masking {
    pub(crate) fn new(controller: MaskController, dtmf: bool) -> Self {
        Self {
            controller,
            spans: HashMap::new(),
            dtmf: dtmf.then(HashMap::new),
        }
    }

    /// Applies a trigger event.
    #[allow(dead_code)] // the focus watchers feed this
    pub(crate) fn on_trigger(&mut self, event: &TriggerEvent, timeline: &mut MaskTimeline) {
        for command in self.controller.on_event(event) {
            self.apply(command, timeline);
        }
    }

    fn apply(&mut self, command: MaskCommand, timeline: &mut MaskTimeline) {
        match command {
            MaskCommand::Open {
                key,
                start_ns,
                screen,
                audio,
                reason,
                rule_id,
                trigger,
            } => {
                let screen = match screen {
                    ScreenMask::Full => vigil_media::ScreenMask::Full,
                    ScreenMask::Region(r) => {
                        vigil_media::ScreenMask::Region(r.x, r.y, r.width, r.height)
                    }
                    ScreenMask::None => vigil_media::ScreenMask::None,
                };
                let index = timeline.add(MaskSpan {
                    start_ns,
                    end_ns: u64::MAX,
                    screen,
                    audio,
                    reason,
                    rule_id,
                    trigger: trigger.as_str().into(),
                });
                self.spans.insert(key, index);
            }
            MaskCommand::Close { key, end_ns } => {
                if let Some(index) = self.spans.remove(&key) {
                    timeline.close(index, end_ns);
                }
            }
        }
    }

    /// Runs DTMF detection on newly captured audio; a tone silences both tracks from its onset
    /// until the tail after it ends.
    pub(crate) fn on_audio(&mut self, chunk: &AudioChunk, timeline: &mut MaskTimeline) {
        let Some(detectors) = self.dtmf.as_mut() else {
            return;
        };
        let (detector, open) = detectors
            .entry(chunk.role)
            .or_insert_with(|| (DtmfDetector::new(chunk.sample_rate), None));
        let (ended, sounding) = detector.push(chunk.pts_ns, &chunk.samples);
        if let (Some(tone), None) = (sounding, *open) {
            *open = Some(timeline.add(dtmf_span(tone)));
        }
        for tone in ended {
            match open.take() {
                Some(index) => timeline.close(index, tone.end_ns + DTMF_TAIL_NS),
                // A tone that began and ended within one chunk.
                None => {
                    let index = timeline.add(dtmf_span(tone));
                    timeline.close(index, tone.end_ns + DTMF_TAIL_NS);
                }
            }
        }
    }
}

fn dtmf_span(tone: ToneSpan) -> MaskSpan {
    MaskSpan {
        start_ns: tone.start_ns.saturating_sub(DTMF_LEAD_NS),
        end_ns: u64::MAX,
        screen: vigil_media::ScreenMask::None,
        audio: true,
        reason: "DTMF tones".into(),
        rule_id: None,
        trigger: TriggerSource::Dtmf.as_str().into(),
    }
}
