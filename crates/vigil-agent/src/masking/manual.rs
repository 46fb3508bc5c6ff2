//! Masks that people and integrations ask for: API masks (CTI/CRM) and the agent's manual pause.
//! Both mask the screen and silence the voice from the moment asked; both have an end fixed in
//! advance (so a forgotten one ends by itself), which an explicit end shortens. The recorded
//! person holds the control secret, so neither may last without limit: an API mask ends at
//! the policy's maximum, pauses draw on a daily budget, and a pause asked again while paused
//! keeps the first one's limit.

use std::collections::BTreeMap;

use vigil_mask::{ScreenMask, TriggerSource};
use vigil_media::{MaskSpan, MaskTimeline};

use crate::control::{ControlRefusal, PauseState};

/// The rules for manual masks, from the configuration or the policy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PausePolicy {
    pub(crate) allowed: bool,
    /// The longest single pause.
    pub(crate) max_ns: u64,
    /// All pauses of a day together.
    pub(crate) daily_budget_ns: u64,
    /// The longest API mask.
    pub(crate) api_mask_max_ns: u64,
}

/// A pause in force: its span and when it began (a pause asked again keeps that limit).
#[derive(Debug, Clone, Copy)]
struct Pause {
    index: usize,
    started_ns: u64,
}

/// Open manual masks: API mask ids and the pause, as mask timeline ids; the day's pause use.
#[derive(Debug, Default)]
pub(crate) struct ManualMasks {
    api: BTreeMap<u64, usize>,
    next_id: u64,
    pause: Option<Pause>,
    /// Pause time used today before the pause in force (earlier pauses and sessions).
    paused_before_ns: u64,
    /// Refusals not yet reported (reason), for the heartbeat.
    refusals: Vec<String>,
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
    /// Pause time already used today (earlier sessions), as kept in the spool.
    pub(crate) fn with_used_today(used_ns: u64) -> Self {
        Self {
            paused_before_ns: used_ns,
            ..Self::default()
        }
    }

    /// Starts an API mask, ending after `max_ns` or the policy's maximum, whichever is
    /// sooner; returns its id.
    pub(crate) fn start_mask(
        &mut self,
        now_ns: u64,
        reason: &str,
        max_ns: Option<u64>,
        policy: PausePolicy,
        timeline: &mut MaskTimeline,
    ) -> u64 {
        self.next_id += 1;
        let length = max_ns.map_or(policy.api_mask_max_ns, |m| m.min(policy.api_mask_max_ns));
        let end = now_ns.saturating_add(length);
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

    /// Pauses (masks everything) for the asked time: at most the policy's maximum counted
    /// from the start of a pause already in force, and at most what is left of today's budget.
    pub(crate) fn pause(
        &mut self,
        now_ns: u64,
        reason: &str,
        seconds: Option<u64>,
        policy: PausePolicy,
        timeline: &mut MaskTimeline,
    ) -> Result<(), ControlRefusal> {
        if !policy.allowed {
            tracing::warn!("manual pause refused: not allowed by the policy");
            self.refuse("pause not allowed");
            return Err(ControlRefusal::PauseNotAllowed);
        }
        let current = self.current_pause(now_ns, timeline);
        // The budget left, counting the pause in force as used up to now only.
        let left = policy
            .daily_budget_ns
            .saturating_sub(self.paused_ns(now_ns, timeline));
        if left == 0 {
            tracing::warn!("manual pause refused: today's pause budget is spent");
            self.refuse("daily pause budget spent");
            return Err(ControlRefusal::PauseBudgetSpent {
                budget_seconds: policy.daily_budget_ns / 1_000_000_000,
            });
        }
        let asked = seconds.map_or(policy.max_ns, |s| s.saturating_mul(1_000_000_000));
        let started_ns = current.map_or(now_ns, |p| p.started_ns);
        let end = now_ns
            .saturating_add(asked.min(left))
            .min(started_ns.saturating_add(policy.max_ns));
        if let Some(pause) = current {
            // Asked again while paused: the same pause with a new end, never a longer limit.
            self.end_pause(pause, now_ns, timeline);
        }
        let index = timeline.add(span(
            now_ns,
            end,
            format!("paused by the agent: {reason}"),
            TriggerSource::Pause,
        ));
        tracing::info!(
            seconds = (end - now_ns) / 1_000_000_000,
            "manual pause started"
        );
        self.pause = Some(Pause { index, started_ns });
        Ok(())
    }

    /// The pause in force at `now_ns`; a pause that ended by itself is counted as used.
    fn current_pause(&mut self, now_ns: u64, timeline: &MaskTimeline) -> Option<Pause> {
        let pause = self.pause?;
        if open_at(timeline, pause.index, now_ns) {
            return Some(pause);
        }
        self.pause = None;
        if let Some(span) = timeline.span(pause.index) {
            self.paused_before_ns += span.end_ns.saturating_sub(span.start_ns);
        }
        None
    }

    /// Ends a pause at `now_ns` and counts it as used.
    fn end_pause(&mut self, pause: Pause, now_ns: u64, timeline: &mut MaskTimeline) {
        timeline.close(pause.index, now_ns);
        if let Some(span) = timeline.span(pause.index) {
            self.paused_before_ns += span.end_ns.saturating_sub(span.start_ns);
        }
        self.pause = None;
    }

    /// Pause time used today, up to `now_ns`.
    pub(crate) fn paused_ns(&self, now_ns: u64, timeline: &MaskTimeline) -> u64 {
        let current = self
            .pause
            .and_then(|p| timeline.span(p.index))
            .map_or(0, |s| s.end_ns.min(now_ns).saturating_sub(s.start_ns));
        self.paused_before_ns + current
    }

    /// Keeps a refusal for the heartbeat (the newest 20: a flood of requests must not grow
    /// memory).
    fn refuse(&mut self, reason: &str) {
        if self.refusals.len() >= 20 {
            self.refusals.remove(0);
        }
        self.refusals.push(reason.to_string());
    }

    /// Refusals since the last call (for the heartbeat).
    pub(crate) fn take_refusals(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refusals)
    }

    /// Ends the pause now (nothing to do when none runs).
    pub(crate) fn resume(&mut self, now_ns: u64, timeline: &mut MaskTimeline) {
        if let Some(pause) = self.current_pause(now_ns, timeline) {
            self.end_pause(pause, now_ns, timeline);
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
        let span = timeline.span(self.pause?.index)?;
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
            daily_budget_ns: 3600 * S,
            api_mask_max_ns: 900 * S,
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

    const POLICY: PausePolicy = PausePolicy {
        allowed: true,
        max_ns: 60 * S,
        daily_budget_ns: 100 * S,
        api_mask_max_ns: 900 * S,
    };

    #[test]
    fn a_pause_asked_again_keeps_its_limit_and_the_day_has_a_budget() {
        let mut timeline = MaskTimeline::default();
        let mut manual = ManualMasks::with_used_today(20 * S);
        let wall = |ns: u64| (ns / S).to_string();
        manual
            .pause(0, "break", Some(60), POLICY, &mut timeline)
            .unwrap();
        // Re-issued 50 s in: still ends 60 s after the first start, not 60 s from now.
        manual
            .pause(50 * S, "again", Some(60), POLICY, &mut timeline)
            .unwrap();
        assert_eq!(
            manual.pause_state(55 * S, &timeline, wall).unwrap().until,
            "60"
        );
        assert_eq!(
            manual.paused_ns(100 * S, &timeline),
            80 * S,
            "20 before + 60"
        );
        // 20 s of the day's 100 left: a new pause is cut to that, then refused.
        manual
            .pause(100 * S, "more", Some(60), POLICY, &mut timeline)
            .unwrap();
        assert_eq!(
            manual.pause_state(101 * S, &timeline, wall).unwrap().until,
            "120"
        );
        assert_eq!(
            manual.pause(130 * S, "more", None, POLICY, &mut timeline),
            Err(ControlRefusal::PauseBudgetSpent {
                budget_seconds: 100
            })
        );
        assert_eq!(manual.take_refusals(), vec!["daily pause budget spent"]);
        assert!(manual.take_refusals().is_empty(), "reported once");
    }

    #[test]
    fn api_masks_end_by_id_once() {
        let mut timeline = MaskTimeline::default();
        let mut manual = ManualMasks::default();
        let id = manual.start_mask(S, "card payment", None, POLICY, &mut timeline);
        assert_eq!(manual.open_api_masks(2 * S, &timeline), vec![id]);
        manual.end_mask(3 * S, id, &mut timeline).unwrap();
        assert!(manual.open_api_masks(3 * S, &timeline).is_empty());
        assert_eq!(
            manual.end_mask(4 * S, id, &mut timeline),
            Err(ControlRefusal::NoSuchMask { id })
        );
        let bounded = manual.start_mask(5 * S, "x", Some(2 * S), POLICY, &mut timeline);
        assert!(manual.open_api_masks(8 * S, &timeline).is_empty());
        assert!(manual.end_mask(8 * S, bounded, &mut timeline).is_err());
        // Never ended: it lifts at the policy's maximum; a longer asked end is cut to it.
        let forgotten = manual.start_mask(10 * S, "x", None, POLICY, &mut timeline);
        assert_eq!(manual.open_api_masks(909 * S, &timeline), vec![forgotten]);
        assert!(manual.open_api_masks(910 * S, &timeline).is_empty());
        manual.start_mask(1000 * S, "x", Some(10_000 * S), POLICY, &mut timeline);
        assert!(manual.open_api_masks(1900 * S, &timeline).is_empty());
    }
}
