//! Masks that people and integrations ask for: API masks (CTI/CRM) and the agent's manual pause.
//! Both mask the screen and silence the voice from the moment asked; both have an end fixed in
//! advance when bounded (so a forgotten pause ends by itself), which an explicit end shortens.

use std::collections::BTreeMap;

use vigil_mask::TriggerSource;
use vigil_media::{MaskSpan, MaskTimeline, ScreenMask};

use crate::control::{ControlRefusal, PauseState};

/// The pause rules from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PausePolicy {
    pub(crate) allowed: bool,
    pub(crate) max_ns: u64,
}

/// Open manual masks: API mask ids and the pause, as mask timeline indexes.
#[derive(Debug, Default)]
pub(crate) struct ManualMasks {
    api: BTreeMap<u64, usize>,
    next_id: u64,
    pause: Option<usize>,
}

fn span(at_ns: u64, end_ns: u64, reason: String, trigger: TriggerSource) -> MaskSpan {
    MaskSpan {
        start_ns: at_ns,
        end_ns,
        screen: ScreenMask::Full,
        audio: true,
        reason,
        rule_id: None,
        trigger: trigger.as_str().into(),
        decided_ns: Some(at_ns),
    }
}

/// Whether a span is still in force at `now_ns`.
fn open_at(timeline: &MaskTimeline, index: usize, now_ns: u64) -> bool {
    timeline.span(index).is_some_and(|s| s.end_ns > now_ns)
}

impl ManualMasks {
    /// Starts an API mask; returns its id.
    pub(crate) fn start_mask(
        &mut self,
        now_ns: u64,
        reason: &str,
        max_ns: Option<u64>,
        timeline: &mut MaskTimeline,
    ) -> u64 {
        self.next_id += 1;
        let end = max_ns.map_or(u64::MAX, |m| now_ns.saturating_add(m));
        let index = timeline.add(span(
            now_ns,
            end,
            format!("api: {reason}"),
            TriggerSource::Api,
        ));
        tracing::info!(id = self.next_id, "mask started through the control API");
        self.api.insert(self.next_id, index);
        self.next_id
    }

    /// Ends an API mask now.
    pub(crate) fn end_mask(
        &mut self,
        now_ns: u64,
        id: u64,
        timeline: &mut MaskTimeline,
    ) -> Result<(), ControlRefusal> {
        match self.api.remove(&id) {
            Some(index) if open_at(timeline, index, now_ns) => {
                timeline.close(index, now_ns);
                tracing::info!(id, "mask ended through the control API");
                Ok(())
            }
            _ => Err(ControlRefusal::NoSuchMask { id }),
        }
    }

    /// Pauses (masks everything) for the asked time, at most the policy's maximum.
    pub(crate) fn pause(
        &mut self,
        now_ns: u64,
        reason: &str,
        seconds: Option<u64>,
        policy: PausePolicy,
        timeline: &mut MaskTimeline,
    ) -> Result<(), ControlRefusal> {
        if !policy.allowed {
            tracing::warn!("manual pause refused: not allowed by the configuration");
            return Err(ControlRefusal::PauseNotAllowed);
        }
        let asked = seconds.map_or(policy.max_ns, |s| s.saturating_mul(1_000_000_000));
        let length = asked.min(policy.max_ns);
        if let Some(index) = self.pause.take().filter(|i| open_at(timeline, *i, now_ns)) {
            timeline.close(index, now_ns);
        }
        let index = timeline.add(span(
            now_ns,
            now_ns + length,
            format!("paused by the agent: {reason}"),
            TriggerSource::Pause,
        ));
        tracing::info!(seconds = length / 1_000_000_000, "manual pause started");
        self.pause = Some(index);
        Ok(())
    }

    /// Ends the pause now (nothing to do when none runs).
    pub(crate) fn resume(&mut self, now_ns: u64, timeline: &mut MaskTimeline) {
        if let Some(index) = self.pause.take().filter(|i| open_at(timeline, *i, now_ns)) {
            timeline.close(index, now_ns);
            tracing::info!("manual pause ended by the agent");
        }
    }

    /// API masks still in force.
    pub(crate) fn open_api_masks(&self, now_ns: u64, timeline: &MaskTimeline) -> Vec<u64> {
        self.api
            .iter()
            .filter(|(_, index)| open_at(timeline, **index, now_ns))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The pause in force, with its end as `to_wall` renders it.
    pub(crate) fn pause_state(
        &self,
        now_ns: u64,
        timeline: &MaskTimeline,
        to_wall: impl Fn(u64) -> String,
    ) -> Option<PauseState> {
        let span = timeline.span(self.pause?)?;
        (span.end_ns > now_ns).then(|| PauseState {
            reason: span.reason.clone(),
            until: to_wall(span.end_ns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_pause_is_refused_when_not_allowed_and_bounded_when_allowed() {
        let mut timeline = MaskTimeline::default();
        let mut manual = ManualMasks::default();
        let off = PausePolicy {
            allowed: false,
            max_ns: 60 * S,
        };
        assert_eq!(
            manual.pause(0, "break", None, off, &mut timeline),
            Err(ControlRefusal::PauseNotAllowed)
        );
        let on = PausePolicy {
            allowed: true,
            ..off
        };
        manual
            .pause(10 * S, "break", Some(3600), on, &mut timeline)
            .unwrap();
        let wall = |ns: u64| (ns / S).to_string();
        assert_eq!(
            manual.pause_state(20 * S, &timeline, wall).unwrap().until,
            "70"
        );
        assert!(
            manual.pause_state(70 * S, &timeline, wall).is_none(),
            "ended by itself"
        );
        manual
            .pause(100 * S, "lunch", Some(30), on, &mut timeline)
            .unwrap();
        manual.resume(105 * S, &mut timeline);
        assert!(manual.pause_state(105 * S, &timeline, wall).is_none());
        let mut frame_samples = vec![1.0f32; 16];
        timeline.redact_samples(104 * S, 16, &mut frame_samples);
        assert!(
            frame_samples.iter().all(|s| *s == 0.0),
            "silenced while paused"
        );
    }

    #[test]
    fn api_masks_end_by_id_once() {
        let mut timeline = MaskTimeline::default();
        let mut manual = ManualMasks::default();
        let id = manual.start_mask(S, "card payment", None, &mut timeline);
        assert_eq!(manual.open_api_masks(2 * S, &timeline), vec![id]);
        manual.end_mask(3 * S, id, &mut timeline).unwrap();
        assert!(manual.open_api_masks(3 * S, &timeline).is_empty());
        assert_eq!(
            manual.end_mask(4 * S, id, &mut timeline),
            Err(ControlRefusal::NoSuchMask { id })
        );
        let bounded = manual.start_mask(5 * S, "x", Some(2 * S), &mut timeline);
        assert!(manual.open_api_masks(8 * S, &timeline).is_empty());
        assert!(manual.end_mask(8 * S, bounded, &mut timeline).is_err());
    }
}
