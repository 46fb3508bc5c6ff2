//! Applying the vault's policy to a recording (issue 5): before a session starts, the last
//! good policy replaces the local configuration's settings; while it runs, a new policy is
//! applied at once where that can be done without breaking the session — screen on or off
//! (within one loop turn, voice untouched), frame rate, voice on or off, DTMF masking, masking
//! rules, pause rules, segment length (from the next segment) — and the rest (delay line,
//! picture height cap, focus masking, upload settings, monitors) from the next session.

use std::time::Duration;

use crossbeam_channel::Sender;
use vigil_capture::{Capture, CaptureError, Clock, ScreenConfig, SourceHandle};
use vigil_media::{CropRect, MaskSpan, MaskTimelineHandle, Segmenter};
use vigil_proto::policy::{Monitors, Policy};
use vigil_proto::ScreenMask;

use crate::masking::{Masking, PausePolicy};
use crate::options::RecordOptions;

/// The local configuration with the policy's settings in place of its own.
pub(crate) fn apply_to_options(options: &mut RecordOptions, policy: &Policy) {
    let template = screen_template(options);
    options.screen = policy.screen.then_some(ScreenConfig {
        fps: policy.fps,
        ..template
    });
    options.encoder.max_fps = policy.fps;
    options.encoder.max_height = policy.max_height;
    options.segment = Duration::from_secs(u64::from(policy.segment_seconds));
    options.delay = Duration::from_millis(u64::from(policy.mask_delay_ms));
    options.dtmf_masking = policy.dtmf_masking;
    options.focus_masking = policy.focus_masking;
    options.pause_allowed = policy.pause_allowed;
    options.pause_max = Duration::from_secs(u64::from(policy.pause_max_seconds));
    options.pause_daily_budget = Duration::from_secs(u64::from(policy.pause_daily_budget_seconds));
    options.api_mask_max = Duration::from_secs(u64::from(policy.api_mask_max_seconds));
    options.mask_rules = policy.mask_rules.clone();
    options.upload.max_bytes_per_second =
        (policy.upload_max_bytes_per_second > 0).then_some(policy.upload_max_bytes_per_second);
    options.quota_bytes = policy.spool_quota_bytes;
    options.voice = policy.voice;
    options.encoder.crop = match (policy.monitors, &options.screen) {
        (Monitors::Primary, Some(screen)) => primary_monitor(screen),
        _ => None,
    };
}

/// The primary monitor's rectangle on the desktop the screen source records; `None` (the whole
/// desktop) when it cannot be told.
fn primary_monitor(screen: &ScreenConfig) -> Option<CropRect> {
    let monitors = match vigil_capture::list_devices(screen) {
        Ok(list) => list.monitors,
        Err(e) => {
            tracing::warn!(error = %e, "monitors unknown: the whole desktop is recorded");
            return None;
        }
    };
    // Monitors left of or above the origin shift the desktop's picture.
    let left = monitors.iter().map(|m| m.x).min().unwrap_or(0);
    let top = monitors.iter().map(|m| m.y).min().unwrap_or(0);
    let primary = monitors.iter().find(|m| m.primary)?;
    Some(CropRect {
        x: u32::try_from(primary.x - left).ok()?,
        y: u32::try_from(primary.y - top).ok()?,
        width: primary.width,
        height: primary.height,
    })
}

/// The screen settings to start from (display, pointer) when the policy turns the screen on.
pub(crate) fn screen_template(options: &RecordOptions) -> ScreenConfig {
    options.screen.clone().unwrap_or(ScreenConfig {
        fps: options.encoder.max_fps,
        draw_pointer: true,
        display: None,
    })
}

/// The parts of a session a policy can change while it runs.
pub(crate) struct LiveSession {
    /// Which policy version governed which part of the session (the last: the one in force).
    versions: PolicyVersions,
    policy: Option<Policy>,
    template: ScreenConfig,
    screen: Option<SourceHandle>,
    tx: Sender<Capture>,
    clock: Clock,
    /// The session's mask timeline, where voice is silenced while the policy turns it off.
    timeline: MaskTimelineHandle,
    /// The mask span silencing voice while the policy turns voice off.
    voice_off: Option<usize>,
}

impl LiveSession {
    pub(crate) fn new(
        version: u64,
        policy: Option<Policy>,
        template: ScreenConfig,
        screen: Option<SourceHandle>,
        tx: Sender<Capture>,
        clock: Clock,
        timeline: MaskTimelineHandle,
    ) -> Self {
        Self {
            versions: PolicyVersions::new(version),
            policy,
            template,
            screen,
            tx,
            clock,
            timeline,
            voice_off: None,
        }
    }

    /// The policy version in force (0: local configuration).
    fn version(&self) -> u64 {
        self.versions.current()
    }

    /// The policy version a segment just closed was recorded under (see [`PolicyVersions`]).
    pub(crate) fn version_for(&mut self, start_ns: u64, end_ns: u64) -> u64 {
        self.versions.for_segment(start_ns, end_ns)
    }

    /// Ends the live part of the session (its screen source stops); what is left is which
    /// version governed when, for the segments still to close.
    pub(crate) fn into_versions(self) -> PolicyVersions {
        self.versions
    }

    /// Whether screen capture runs.
    pub(crate) fn screen_on(&self) -> bool {
        self.screen.is_some()
    }

    /// Voice off from the start of the session (the policy in force said so).
    pub(crate) fn start_voice_off(&mut self, at_ns: u64) {
        self.silence_voice(at_ns);
    }

    fn silence_voice(&mut self, at_ns: u64) {
        if self.voice_off.is_none() {
            self.voice_off = Some(self.timeline.lock().add(MaskSpan {
                start_ns: at_ns,
                end_ns: u64::MAX,
                screen: ScreenMask::None,
                audio: true,
                reason: format!("voice recording off by policy v{}", self.version()),
                rule_id: None,
                trigger: "policy".into(),
                decided_ns: Some(at_ns),
            }));
        }
    }

    /// Applies a new policy now.
    pub(crate) fn apply(
        &mut self,
        version: u64,
        policy: Policy,
        segmenter: &mut Segmenter,
        masking: &mut Masking,
    ) -> Result<(), CaptureError> {
        let now = self.clock.now_ns();
        self.versions.applied(now, version);
        let fps_changed = self.template.fps != policy.fps;
        self.template.fps = policy.fps;
        masking.set_frame_rate(policy.fps);
        match (policy.screen, self.screen.is_some()) {
            (false, true) => {
                // Off from now: the segmenter drops any frame stamped later. The capture
                // thread is stopped and joined beside the engine, which must not wait for it
                // (audio keeps flowing through this loop).
                segmenter.screen_off(
                    now,
                    format!("screen recording turned off by policy v{version}"),
                );
                if let Some(source) = self.screen.take() {
                    std::thread::spawn(move || drop(source));
                }
                tracing::info!(version, "screen capture stopped by policy");
            }
            (true, false) => {
                segmenter.screen_on(now);
                self.screen = Some(vigil_capture::start_screen(
                    self.template.clone(),
                    self.clock,
                    self.tx.clone(),
                )?);
                tracing::info!(version, "screen capture started by policy");
            }
            (true, true) if fps_changed => {
                self.screen = None;
                self.screen = Some(vigil_capture::start_screen(
                    self.template.clone(),
                    self.clock,
                    self.tx.clone(),
                )?);
                tracing::info!(
                    version,
                    fps = policy.fps,
                    "screen capture restarted at a new rate"
                );
            }
            _ => {}
        }
        match (policy.voice, self.voice_off) {
            (false, None) => self.silence_voice(now),
            (true, Some(index)) => {
                self.timeline.lock().close(index, now);
                self.voice_off = None;
            }
            _ => {}
        }
        segmenter.set_segment_length(u64::from(policy.segment_seconds) * 1_000_000_000);
        masking.set_dtmf(policy.dtmf_masking);
        let rules_changed = self
            .policy
            .as_ref()
            .is_none_or(|old| old.mask_rules != policy.mask_rules);
        if rules_changed {
            // Validated by the vault and again here; invalid rules keep the ones in force.
            match vigil_mask::RuleSet::with_site_rules(policy.mask_rules.clone()) {
                Ok(rules) => masking.set_rules(rules),
                Err(e) => tracing::error!(error = %e, "policy masking rules refused"),
            }
        }
        masking.set_pause_policy(PausePolicy {
            allowed: policy.pause_allowed,
            max_ns: u64::from(policy.pause_max_seconds) * 1_000_000_000,
            daily_budget_ns: u64::from(policy.pause_daily_budget_seconds) * 1_000_000_000,
            api_mask_max_ns: u64::from(policy.api_mask_max_seconds) * 1_000_000_000,
        });
        if let Some(old) = &self.policy {
            let later = old.max_height != policy.max_height
                || old.monitors != policy.monitors
                || old.mask_delay_ms != policy.mask_delay_ms
                || old.focus_masking != policy.focus_masking
                || old.upload_max_bytes_per_second != policy.upload_max_bytes_per_second
                || old.spool_quota_bytes != policy.spool_quota_bytes;
            if later {
                tracing::info!(
                    version,
                    "delay line, height cap, monitors, focus masking and upload settings \
                     apply from the next session"
                );
            }
        }
        self.policy = Some(policy);
        Ok(())
    }
}

/// Which policy version governed which part of the session, so that each segment's manifest
/// says under which policy it was recorded: the newest version in force during any part of
/// it (a policy applied mid-segment governs the segment's end).
#[derive(Debug, Clone)]
pub(crate) struct PolicyVersions {
    /// (from, version), oldest first; the first from the session's start.
    changes: Vec<(u64, u64)>,
}

impl PolicyVersions {
    /// The version in force when the session starts (0: local configuration).
    fn new(version: u64) -> Self {
        Self {
            changes: vec![(0, version)],
        }
    }

    /// `version` governs from `at_ns` on.
    fn applied(&mut self, at_ns: u64, version: u64) {
        self.changes.push((at_ns, version));
    }

    /// The version in force now.
    fn current(&self) -> u64 {
        self.changes.last().map_or(0, |(_, version)| *version)
    }

    /// The version for a segment ending at `end_ns` (exclusive). Segments come in order: what
    /// only governed earlier ones is forgotten.
    pub(crate) fn for_segment(&mut self, start_ns: u64, end_ns: u64) -> u64 {
        let in_force_at_start = self
            .changes
            .iter()
            .rposition(|(from, _)| *from <= start_ns)
            .unwrap_or(0);
        self.changes.drain(..in_force_at_start);
        self.changes
            .iter()
            .rev()
            .find(|(from, _)| *from < end_ns)
            .or(self.changes.first())
            .map_or(0, |(_, version)| *version)
    }
}

#[cfg(test)]
mod tests {
    use super::PolicyVersions;

    const S: u64 = 1_000_000_000;

    #[test]
    fn each_segment_carries_the_newest_version_that_governed_it() {
        let mut versions = PolicyVersions::new(3);
        assert_eq!(versions.for_segment(0, 10 * S), 3);
        // Version 4 from the middle of the second segment, 5 from the third's start.
        versions.applied(15 * S, 4);
        versions.applied(20 * S, 5);
        assert_eq!(versions.for_segment(10 * S, 20 * S), 4);
        assert_eq!(versions.for_segment(20 * S, 30 * S), 5);
        assert_eq!(versions.for_segment(30 * S, 40 * S), 5);
        assert_eq!(
            versions.changes.len(),
            1,
            "what governed only earlier segments is forgotten"
        );
    }

    #[test]
    fn without_a_vault_policy_segments_say_version_0() {
        let mut versions = PolicyVersions::new(0);
        assert_eq!(versions.for_segment(0, 10 * S), 0);
        assert_eq!(versions.for_segment(10 * S, 20 * S), 0);
    }
}
