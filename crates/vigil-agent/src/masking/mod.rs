//! The masking stage's wiring: trigger events and DTMF detection turn into spans of the media
//! stage's mask timeline, before the delay line releases the media they cover.

mod manual;
mod usage;

use std::collections::{BTreeMap, HashMap};

pub(crate) use manual::PausePolicy;
pub use usage::todays_usage;
pub(crate) use usage::DailyUsage;

use vigil_capture::{AudioChunk, AudioRole};
use vigil_mask::{
    DtmfDetector, MaskCommand, MaskController, ScreenMask, ToneSpan, TriggerEvent, TriggerSource,
    WatchedFields,
};
use vigil_media::{MaskSpan, MaskTimeline, MaskTimelineHandle};

use crate::control::{
    ActiveMask, AgentState, ControlCommand, ControlRefusal, ExtensionLink, ExtensionMessage,
    HeldFieldState, TriggerHealth,
};

/// The extension's health until a browser's extension connects.
const NOT_ATTACHED: &str = "no browser extension attached";

/// How long audio stays silent after the last DTMF tone.
const DTMF_TAIL_NS: u64 = 1_500_000_000;
/// Audio silenced before a tone's detected start: its onset, which the detector cannot see, and
/// a whole tone's worth more in case the analysis restarted inside it (a resynchronised audio
/// clock restarts the detector's blocks).
const DTMF_LEAD_NS: u64 = 150_000_000;

/// Masking state of one recording session.
pub(crate) struct Masking {
    /// The media stage's mask timeline, which every decision changes.
    timeline: MaskTimelineHandle,
    controller: MaskController,
    /// Controller keys → timeline indexes.
    spans: HashMap<u64, usize>,
    dtmf: Option<HashMap<AudioRole, (DtmfDetector, Option<usize>)>>,
    manual: manual::ManualMasks,
    pause_policy: PausePolicy,
    /// The last health each watcher reported.
    health: BTreeMap<&'static str, (bool, String)>,
    /// `None` when field masking is off: the extension's reports are ignored.
    extension: Option<ExtensionLink>,
    /// The fields the accessibility watcher follows for the controller.
    watched: WatchedFields,
}

impl Masking {
    pub(crate) fn new(
        timeline: MaskTimelineHandle,
        mut controller: MaskController,
        dtmf: bool,
        fields: bool,
        pause_policy: PausePolicy,
    ) -> Self {
        let mut health = BTreeMap::new();
        if fields {
            controller.expect_extension();
            // Until a browser's extension says hello: a page's fields are then seen through
            // the accessibility bus only (no autocomplete tokens, no page rectangles).
            health.insert(
                TriggerSource::Extension.as_str(),
                (false, NOT_ATTACHED.to_string()),
            );
        }
        Self {
            timeline,
            controller,
            spans: HashMap::new(),
            dtmf: dtmf.then(HashMap::new),
            manual: manual::ManualMasks::default(),
            pause_policy,
            health,
            extension: fields.then(ExtensionLink::default),
            watched: WatchedFields::default(),
        }
    }

    /// The fields the accessibility watcher is to follow (hand to [`FocusWatchdog::start`]).
    pub(crate) fn watched_fields(&self) -> WatchedFields {
        self.watched.clone()
    }

    /// The recording's frame rate (at least 1 frame a second): held fields whose position is
    /// older than a frame interval mask the screen.
    pub(crate) fn set_frame_rate(&mut self, fps: u32) {
        self.controller
            .set_frame_interval(1_000_000_000 / u64::from(fps.max(1)));
    }

    /// The delay line: how long a position report may take before the screen is masked.
    pub(crate) fn set_delay(&mut self, delay_ns: u64) {
        self.controller.set_delay(delay_ns);
    }

    /// Pause time used earlier today (kept in the spool by earlier sessions).
    pub(crate) fn set_paused_today(&mut self, used_ns: u64) {
        self.manual = manual::ManualMasks::with_used_today(used_ns);
    }

    /// Pause time used today, up to `now_ns`.
    pub(crate) fn paused_today_ns(&self, now_ns: u64) -> u64 {
        self.manual.paused_ns(now_ns, &self.timeline.lock())
    }

    /// Pauses refused since the last call (for the heartbeat).
    pub(crate) fn take_pause_refusals(&mut self) -> Vec<String> {
        self.manual.take_refusals()
    }

    /// Turns DTMF masking on or off (policy).
    pub(crate) fn set_dtmf(&mut self, on: bool) {
        if on != self.dtmf.is_some() {
            self.dtmf = on.then(HashMap::new);
        }
    }

    /// Replaces the site masking rules (policy), ahead of the built-in ones; a field masked
    /// now stays masked until it loses focus.
    pub(crate) fn set_rules(&mut self, rules: vigil_mask::RuleSet) {
        self.controller.set_rules(rules);
    }

    /// Replaces the pause rules (policy); a pause in progress keeps its end.
    pub(crate) fn set_pause_policy(&mut self, policy: PausePolicy) {
        self.pause_policy = policy;
    }

    /// Time-driven checks: a browser extension host that fell silent masks the screen; held
    /// fields whose position went stale mask it too.
    pub(crate) fn tick(&mut self, now_ns: u64) {
        let handle = self.timeline.clone();
        let timeline = &mut handle.lock();
        if let Some(event) = self.extension.as_mut().and_then(|l| l.check(now_ns)) {
            tracing::warn!("browser extension host stopped answering: screen masked");
            self.apply_trigger(&event, now_ns, timeline);
        }
        for command in self.controller.tick(now_ns) {
            self.apply(command, now_ns, timeline);
        }
    }

    /// Applies a control API command at `now_ns`.
    pub(crate) fn on_control(
        &mut self,
        command: &ControlCommand,
        now_ns: u64,
    ) -> Result<(), ControlRefusal> {
        let handle = self.timeline.clone();
        let timeline = &mut handle.lock();
        match command {
            ControlCommand::State => Ok(()),
            ControlCommand::StartMask {
                reason,
                max_seconds,
            } => {
                let max_ns = max_seconds.map(|s| s.saturating_mul(1_000_000_000));
                self.manual
                    .start_mask(now_ns, reason, max_ns, self.pause_policy, timeline);
                Ok(())
            }
            ControlCommand::EndMask { id } => self.manual.end_mask(now_ns, *id, timeline),
            ControlCommand::Pause { reason, seconds } => {
                self.manual
                    .pause(now_ns, reason, *seconds, self.pause_policy, timeline)
            }
            ControlCommand::Resume => {
                self.manual.resume(now_ns, timeline);
                Ok(())
            }
            ControlCommand::Extension { app, message } => {
                self.on_extension(message, app.as_deref(), now_ns, timeline);
                Ok(())
            }
            ControlCommand::Extensions { app, messages } => {
                for message in messages {
                    self.on_extension(message, app.as_deref(), now_ns, timeline);
                }
                Ok(())
            }
        }
    }

    /// Applies one message of the browser extension.
    fn on_extension(
        &mut self,
        message: &ExtensionMessage,
        app: Option<&str>,
        now_ns: u64,
        timeline: &mut MaskTimeline,
    ) {
        let events = match self.extension.as_mut() {
            Some(link) => link.on_message(message, app, now_ns),
            None => Vec::new(),
        };
        for event in events {
            self.apply_trigger(&event, now_ns, timeline);
        }
        if self.extension.is_some() && matches!(message, ExtensionMessage::Bye) {
            // Closed on purpose (the browser quit): nothing to mask, but say so.
            self.health.insert(
                TriggerSource::Extension.as_str(),
                (false, NOT_ATTACHED.to_string()),
            );
        }
    }

    /// The state in force at `now_ns`, read from the mask timeline itself.
    pub(crate) fn state(&self, now_ns: u64, session: Option<String>) -> AgentState {
        let timeline = self.timeline.lock();
        let now_wall = time::OffsetDateTime::now_utc();
        let to_wall = |at_ns: u64| {
            let offset =
                time::Duration::nanoseconds(now_ns as i64 - at_ns.min(i64::MAX as u64) as i64);
            (now_wall - offset)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let masked = timeline
            .overlapping(now_ns, now_ns + 1)
            .map(|s| ActiveMask {
                reason: s.reason.clone(),
                trigger: s.trigger.clone(),
                rule_id: s.rule_id.clone(),
                since: to_wall(s.start_ns),
                screen: s.screen.as_str().into(),
                audio: s.audio,
            })
            .collect();
        AgentState {
            recording: true,
            session,
            masked,
            paused: self.manual.pause_state(now_ns, &timeline, to_wall),
            api_masks: self.manual.open_api_masks(now_ns, &timeline),
            held: self
                .controller
                .held()
                .into_iter()
                .map(|h| HeldFieldState {
                    trigger: h.trigger.as_str().into(),
                    key: h.key,
                    rule_id: h.rule_id,
                    screen: h.screen.as_str().into(),
                })
                .collect(),
            triggers: self
                .health
                .iter()
                .map(|(trigger, (healthy, detail))| TriggerHealth {
                    trigger: trigger.to_string(),
                    healthy: *healthy,
                    detail: detail.clone(),
                })
                .collect(),
        }
    }

    /// Applies a trigger event.
    pub(crate) fn on_trigger(&mut self, event: &TriggerEvent, now_ns: u64) {
        let handle = self.timeline.clone();
        self.apply_trigger(event, now_ns, &mut handle.lock());
    }

    fn apply_trigger(&mut self, event: &TriggerEvent, now_ns: u64, timeline: &mut MaskTimeline) {
        if let TriggerEvent::Health {
            source,
            healthy,
            detail,
            ..
        } = event
        {
            self.health
                .insert(source.as_str(), (*healthy, detail.clone()));
        }
        for command in self.controller.on_event(event) {
            self.apply(command, now_ns, timeline);
        }
    }

    fn apply(&mut self, command: MaskCommand, now_ns: u64, timeline: &mut MaskTimeline) {
        tracing::trace!(?command, now_ns, "mask command");
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
                if start_ns < timeline.applied_until() {
                    // The timeline starts it where it can still act (the manifest says so).
                    tracing::debug!(
                        trigger = trigger.as_str(),
                        late_ms = (timeline.applied_until() - start_ns) / 1_000_000,
                        "mask decided after the media it reaches back to left the delay line"
                    );
                }
                let index = timeline.add(MaskSpan {
                    start_ns,
                    end_ns: u64::MAX,
                    screen,
                    audio,
                    reason,
                    rule_id,
                    trigger: trigger.as_str().into(),
                    decided_ns: Some(now_ns),
                });
                self.spans.insert(key, index);
            }
            MaskCommand::Close { key, end_ns } => {
                if let Some(index) = self.spans.remove(&key) {
                    timeline.close(index, end_ns);
                }
            }
            MaskCommand::Watch {
                source: TriggerSource::Accessibility,
                key,
            } => self.watched.watch(&key),
            MaskCommand::Unwatch {
                source: TriggerSource::Accessibility,
                key,
            } => self.watched.unwatch(&key),
            // The extension reports its fields without being asked.
            MaskCommand::Watch { .. } | MaskCommand::Unwatch { .. } => {}
        }
    }

    /// Runs DTMF detection on newly captured audio; a tone silences both tracks from its onset
    /// until the tail after it ends.
    pub(crate) fn on_audio(&mut self, chunk: &AudioChunk) {
        let Some(detectors) = self.dtmf.as_mut() else {
            return;
        };
        let mut timeline = self.timeline.lock();
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
        screen: ScreenMask::None,
        audio: true,
        reason: "DTMF tones".into(),
        rule_id: None,
        trigger: TriggerSource::Dtmf.as_str().into(),
        // Decided as the tone's audio arrived, before the delay line released it.
        decided_ns: None,
    }
}

/// Keeps the accessibility focus watcher running: starts it, and when it cannot start or stops,
/// reports it down (the controller then masks the whole screen) and restarts it every second.
pub(crate) struct FocusWatchdog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FocusWatchdog {
    pub(crate) fn start(
        clock: vigil_capture::Clock,
        tx: crossbeam_channel::Sender<TriggerEvent>,
        watched: WatchedFields,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("focus-watchdog".into())
            .spawn(move || {
                let mut reported: Option<String> = None;
                while !flag.load(Ordering::SeqCst) {
                    match vigil_mask::start_focus_watcher(clock, tx.clone(), watched.clone()) {
                        Ok(watcher) => {
                            reported = None;
                            while !flag.load(Ordering::SeqCst) && watcher.is_running() {
                                std::thread::sleep(std::time::Duration::from_millis(100));
                            }
                            if flag.load(Ordering::SeqCst) {
                                watcher.stop();
                                return;
                            }
                            tracing::warn!("accessibility focus watcher stopped; restarting");
                        }
                        Err(e) => {
                            let detail = e.to_string();
                            if reported.as_ref() != Some(&detail) {
                                tracing::warn!(error = %detail, "accessibility focus watcher unavailable: screen masked");
                                let _ = tx.send(TriggerEvent::Health {
                                    at_ns: clock.now_ns(),
                                    source: TriggerSource::Accessibility,
                                    healthy: false,
                                    detail: detail.clone(),
                                });
                                reported = Some(detail);
                            }
                            std::thread::sleep(std::time::Duration::from_secs(1));
                        }
                    }
                }
            })
            .expect("spawn focus watchdog");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FocusWatchdog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
