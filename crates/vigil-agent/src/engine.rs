//! The recording engine: one session from start to a clean stop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver};
use uuid::Uuid;
use vigil_capture::{AudioRole, AudioSourceConfig, Capture, CaptureError, Clock, ScreenConfig};
use vigil_media::{FinishedSegment, MaskTimeline, MediaError, Segmenter, SegmenterConfig};
use vigil_proto::EncoderSettings;
use vigil_seal::{DeviceKeyError, RecipientsError, SealError};
use vigil_spool::{Spool, SpoolError};

use crate::control::{ControlEndpoint, ControlRequest, ControlServer, ServeError};
use crate::delivery::{check_quota, open_identity, wait_under_quota, Identity};
use crate::enrollment::{EnrollError, Enrollment};
use crate::live_policy::{apply_to_options, screen_template, LiveSession};
use crate::masking::{FocusWatchdog, Masking, PausePolicy};
use crate::options::RecordOptions;
use crate::policy_sync::{load_last_good, PolicySync, PolicyTrust};
use crate::sealing::{seal_segment, SessionInfo};
use vigil_mask::{MaskController, RuleSet, TriggerEvent};
use vigil_spool::uploader::AgentReportHandle;

/// What a finished recording produced.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    /// The session id.
    pub session_id: Uuid,
    /// The session's folder in the spool.
    pub session_dir: PathBuf,
    /// Segments written.
    pub segments: u64,
    /// Sealed bytes written.
    pub bytes: u64,
    /// Recorded duration.
    pub recorded: Duration,
}

/// Why recording failed or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// No valid recipient: Vigil does not record what nobody authorised can open.
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// The device key could not be loaded.
    #[error(transparent)]
    DeviceKey(#[from] DeviceKeyError),
    /// The enrollment is unusable (keystore, vault CA).
    #[error(transparent)]
    Enrollment(#[from] EnrollError),
    /// The spool holds as much as it may: capture stopped, nothing sealed was dropped.
    #[error(
        "spool quota reached: {segments} segments ({bytes} bytes, quota {quota}) wait for the \
         vault; capture stopped"
    )]
    QuotaReached {
        /// Segments waiting.
        segments: u64,
        /// Their bytes.
        bytes: u64,
        /// The quota.
        quota: u64,
    },
    /// A capture source could not start.
    #[error("capture")]
    Capture(#[from] CaptureError),
    /// Encoding failed.
    #[error("media")]
    Media(#[from] MediaError),
    /// Sealing failed.
    #[error("seal")]
    Seal(#[source] SealError),
    /// The site masking rules are invalid.
    #[error("masking rules")]
    Rules(#[from] vigil_mask::RuleError),
    /// The local control API could not start.
    #[error("control API")]
    Control(#[from] ServeError),
    /// Writing the spool failed (full disk stops the recording).
    #[error("spool")]
    Spool(#[source] SpoolError),
}

/// Updates what the next heartbeat says about this agent.
fn set_report(report: &AgentReportHandle, f: impl FnOnce(&mut vigil_proto::api::AgentReport)) {
    f(&mut report.lock().unwrap_or_else(|p| p.into_inner()));
}

/// Hands captured media to the segmenter, after the masking stage has seen new audio.
fn feed(segmenter: &mut Segmenter, masking: &mut Masking, capture: Capture) {
    if let Capture::Audio(chunk) = &capture {
        masking.on_audio(chunk, segmenter.mask_timeline_mut());
    }
    segmenter.push(capture);
}

/// Takes the trigger events, time-driven decisions and control requests that are waiting.
/// Trigger events first: a span must be in place before the media it covers leaves the delay
/// line (the delay line holds ≥ 500 ms; a trigger wakes the loop at once, and waits at most
/// for the frame being encoded).
fn decide(
    masking: &mut Masking,
    timeline: &mut MaskTimeline,
    clock: &Clock,
    session_id: Uuid,
    triggers: &Receiver<TriggerEvent>,
    controls: &Receiver<ControlRequest>,
) {
    for event in triggers.try_iter() {
        masking.on_trigger(&event, clock.now_ns(), timeline);
    }
    masking.tick(clock.now_ns(), timeline);
    for request in controls.try_iter() {
        answer(masking, timeline, clock, session_id, request);
    }
}

/// Applies a control request and answers with the state read back from the mask timeline.
fn answer(
    masking: &mut Masking,
    timeline: &mut MaskTimeline,
    clock: &Clock,
    session_id: Uuid,
    request: ControlRequest,
) {
    let now = clock.now_ns();
    let applied = masking
        .on_control(&request.command, now, timeline)
        .map(|()| masking.state(now, timeline, Some(session_id.to_string())));
    let _ = request.reply.send(applied);
}

/// Records one session until `stop` is set or the duration has passed, then finishes the segment
/// in progress cleanly.
pub fn record(
    mut options: RecordOptions,
    stop: Arc<AtomicBool>,
) -> Result<RecordSummary, RecordError> {
    let spool = Spool::open(&options.spool).map_err(RecordError::Spool)?;
    spool.reconcile().map_err(RecordError::Spool)?;
    // An enrolled agent records as the vault's last good policy says, not as its local file.
    let trust = match Enrollment::load(spool.root())? {
        Some(e) => Some(PolicyTrust {
            policy_key: e.policy_key()?,
            device_id: e.device_id,
        }),
        None => None,
    };
    let last_good = trust
        .as_ref()
        .and_then(|t| load_last_good(&spool.config_dir(), t));
    let screen_template = screen_template(&options);
    if let Some(policy) = &last_good {
        apply_to_options(&mut options, &policy.statement.policy);
        tracing::info!(
            version = policy.statement.version,
            "recording under the vault's policy"
        );
    }
    // Fail closed before touching any device: no valid recipient, no recording.
    let Identity {
        mut sealer,
        uploader,
        report,
        enrollment,
    } = open_identity(&spool, &options.recipients, &options.upload)?;
    wait_under_quota(&spool, options.quota_bytes, uploader.is_some(), &stop)?;

    let clock = Clock::new();
    let (tx, rx) = unbounded::<Capture>();
    let mut sources = Vec::new();
    let screen_source = match options.screen.clone() {
        Some(screen) => Some(vigil_capture::start_screen(screen, clock, tx.clone())?),
        None => None,
    };
    for (role, device) in [
        (AudioRole::Microphone, options.microphone.clone()),
        (AudioRole::SystemAudio, options.system_audio.clone()),
    ] {
        sources.push(vigil_capture::start_audio(
            AudioSourceConfig { role, device },
            clock,
            tx.clone(),
        )?);
    }
    // Not awaited below: it idles while the communications output is the default output.
    let expected = sources.len() + usize::from(screen_source.is_some());
    if options.communications_output.is_some() || vigil_capture::has_communications_device() {
        sources.push(vigil_capture::start_audio(
            AudioSourceConfig {
                role: AudioRole::Communications,
                device: options.communications_output.clone(),
            },
            clock,
            tx.clone(),
        )?);
    }
    // Kept for a screen source the policy may start later.
    let screen_tx = tx;

    // The session starts once every source has opened its device (or after 3 s, whichever is
    // first), so that slow audio servers do not open every session with a gap.
    let mut early = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut opened = std::collections::HashSet::new();
    while opened.len() < expected {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Capture::Event(e)) => {
                if e.kind == vigil_capture::SourceEventKind::DeviceOpened
                    && e.source != AudioRole::Communications.as_str()
                {
                    opened.insert(e.source);
                }
                early.push(Capture::Event(e));
            }
            // Media from before the origin is dropped by the segmenter's timelines.
            Ok(other) => early.push(other),
            Err(_) => break,
        }
    }
    let origin = clock.now_ns();
    let session_id = Uuid::new_v4();
    let encoder = &options.encoder;
    let session = SessionInfo {
        session_id,
        user: crate::os_user(),
        clock,
        encoder: EncoderSettings {
            video_codec: "libx264".into(),
            video_preset: encoder.preset.clone(),
            video_crf: encoder.crf,
            video_max_fps: encoder.max_fps,
            video_size: (0, 0),
            audio_codec: "libopus".into(),
            audio_bitrate: encoder.audio_bitrate,
            audio_sample_rate: vigil_media::VOICE_RATE,
        },
        microphone: options
            .microphone
            .clone()
            .unwrap_or_else(|| "default".into()),
        system_audio: options
            .system_audio
            .clone()
            .unwrap_or_else(|| "default output".into()),
    };
    tracing::info!(session = %session_id, spool = %spool.root().display(), "recording started");
    let mut segmenter = Segmenter::new(
        SegmenterConfig {
            segment_ns: options.segment.as_nanos() as u64,
            delay_ns: options.delay.as_nanos() as u64,
            encoder: options.encoder.clone(),
        },
        origin,
    )?;
    let mut masking = Masking::new(
        MaskController::new(RuleSet::with_site_rules(options.mask_rules.clone())?),
        options.dtmf_masking,
        options.focus_masking,
        PausePolicy {
            allowed: options.pause_allowed,
            max_ns: options.pause_max.as_nanos() as u64,
            daily_budget_ns: options.pause_daily_budget.as_nanos() as u64,
            api_mask_max_ns: options.api_mask_max.as_nanos() as u64,
        },
    );
    masking.set_frame_rate(options.encoder.max_fps);
    masking.set_delay(options.delay.as_nanos() as u64);
    let mut usage = crate::masking::DailyUsage::load(&spool.config_dir());
    masking.set_paused_today(usage.paused_seconds * 1_000_000_000);
    let (control_tx, control_rx) = unbounded::<ControlRequest>();
    let _control = match options.control_port {
        Some(port) => {
            let folder = ControlEndpoint::folder().map_err(ServeError::from)?;
            Some(ControlServer::start(port, &folder, control_tx)?)
        }
        None => None,
    };
    for capture in early {
        feed(&mut segmenter, &mut masking, capture);
    }
    let policy_version = last_good.as_ref().map_or(0, |p| p.statement.version);
    let mut live = LiveSession::new(
        policy_version,
        last_good.map(|p| p.statement.policy),
        ScreenConfig {
            fps: options.encoder.max_fps,
            ..screen_template
        },
        screen_source,
        screen_tx,
        clock,
    );
    if !options.voice {
        live.start_voice_off(origin, &mut segmenter);
    }
    let (policy_tx, policy_rx) = unbounded::<vigil_proto::policy::SignedPolicy>();
    let _policy_sync = match (&enrollment, &trust, &report) {
        (Some(e), Some(t), Some(r)) => {
            set_report(r, |a| {
                a.agent_version = env!("CARGO_PKG_VERSION").into();
                a.policy_version = policy_version;
                a.recording = true;
            });
            Some(PolicySync::start(
                e.client()?,
                e.device_key()?.signing_key().clone(),
                t.clone(),
                spool.config_dir(),
                r.clone(),
                policy_version,
                policy_tx,
            ))
        }
        _ => None,
    };
    let mut policies = policy_rx;
    let mut reported_at = 0u64;
    let end_at = options.duration.map(|d| origin + d.as_nanos() as u64);

    // Sealing and disk writes run beside the encoder so that neither stalls capture.
    // Each segment goes with the policy version it was recorded under.
    let (seal_tx, seal_rx) = crossbeam_channel::bounded::<(FinishedSegment, u64)>(4);
    let writer_spool = spool.clone();
    let quota = options.quota_bytes;
    let writer = std::thread::Builder::new()
        .name("sealer".into())
        .spawn(move || -> Result<(u64, u64), RecordError> {
            let (mut segments, mut bytes) = (0, 0);
            for (segment, policy_version) in seal_rx {
                let sequence = segment.sequence;
                let written = seal_segment(
                    segment,
                    policy_version,
                    &session,
                    &mut sealer,
                    &writer_spool,
                )?;
                tracing::info!(sequence, bytes = written.bytes, "segment sealed");
                segments += 1;
                bytes += written.bytes;
                // Ending here stops capture; the segment just sealed is kept.
                check_quota(&writer_spool, quota)?;
            }
            Ok((segments, bytes))
        })
        .expect("spawn sealer thread");

    let (trigger_tx, trigger_rx) = unbounded::<vigil_mask::TriggerEvent>();
    let _watchdog = options
        .focus_masking
        .then(|| FocusWatchdog::start(clock, trigger_tx.clone(), masking.watched_fields()));
    drop(trigger_tx);

    let mut failure: Option<RecordError> = None;
    let mut triggers = trigger_rx;
    let mut controls = control_rx;
    let stop_ns = loop {
        decide(
            &mut masking,
            segmenter.mask_timeline_mut(),
            &clock,
            session_id,
            &triggers,
            &controls,
        );
        crossbeam_channel::select! {
            recv(rx) -> capture => match capture {
                Ok(capture) => {
                    feed(&mut segmenter, &mut masking, capture);
                    while let Ok(more) = rx.try_recv() {
                        // Between frames too: a backlog of captures must not hold decisions
                        // (nor the extension's host, which waits for each answer).
                        decide(&mut masking, segmenter.mask_timeline_mut(), &clock, session_id, &triggers, &controls);
                        feed(&mut segmenter, &mut masking, more);
                    }
                }
                Err(_) => break clock.now_ns(),
            },
            recv(triggers) -> event => match event {
                Ok(event) => {
                    masking.on_trigger(&event, clock.now_ns(), segmenter.mask_timeline_mut())
                }
                // No watcher (focus masking off): stop listening.
                Err(_) => triggers = crossbeam_channel::never(),
            },
            recv(controls) -> request => match request {
                Ok(request) => answer(&mut masking, segmenter.mask_timeline_mut(), &clock, session_id, request),
                Err(_) => controls = crossbeam_channel::never(),
            },
            recv(policies) -> update => match update {
                Ok(update) => {
                    let version = update.statement.version;
                    if let Err(e) = live.apply(version, update.statement.policy, &mut segmenter, &mut masking) {
                        failure = Some(e.into());
                        break clock.now_ns();
                    }
                    if let Some(r) = &report {
                        set_report(r, |a| a.policy_version = version);
                    }
                    tracing::info!(version, "policy applied");
                }
                Err(_) => policies = crossbeam_channel::never(),
            },
            default(Duration::from_millis(20)) => {}
        }
        let now = clock.now_ns();
        if now >= reported_at + 1_000_000_000 {
            reported_at = now;
            let state = masking.state(now, segmenter.mask_timeline_mut(), None);
            let screen = live.screen_on();
            // Masked time is sampled once a second; pause time is exact (the budget's).
            if !state.masked.is_empty() {
                usage.masked_seconds += 1;
            }
            usage.paused_seconds =
                masking.paused_today_ns(now, segmenter.mask_timeline_mut()) / 1_000_000_000;
            usage.save(&spool.config_dir());
            let refusals = masking.take_pause_refusals();
            if let Some(r) = report.as_ref() {
                set_report(r, |a| {
                    a.masked = !state.masked.is_empty();
                    a.paused = state.paused.is_some();
                    a.screen = screen;
                    a.masked_seconds_today = usage.masked_seconds;
                    a.paused_seconds_today = usage.paused_seconds;
                    a.triggers_down = state
                        .triggers
                        .iter()
                        .filter(|t| !t.healthy)
                        .map(|t| vigil_proto::api::TriggerDown {
                            trigger: t.trigger.clone(),
                            detail: t.detail.clone(),
                        })
                        .collect();
                    a.pause_refusals.extend(refusals.into_iter().map(|reason| {
                        vigil_proto::api::PolicyRefusal {
                            at: time::OffsetDateTime::now_utc(),
                            reason,
                        }
                    }));
                    // The vault takes at most 20 a heartbeat: keep the newest.
                    let excess = a.pause_refusals.len().saturating_sub(20);
                    a.pause_refusals.drain(..excess);
                });
            }
        }
        if let Some(end) = end_at.filter(|end| now >= *end) {
            break end;
        }
        if stop.load(Ordering::SeqCst) || writer.is_finished() {
            break now;
        }
        // Decisions also between the frames a tick encodes: encoding a backlog of frames
        // (a busy machine, many mask edges) must not hold them.
        let mut between = |timeline: &mut MaskTimeline| {
            decide(
                &mut masking,
                timeline,
                &clock,
                session_id,
                &triggers,
                &controls,
            )
        };
        match segmenter.tick_with(now, &mut between) {
            Ok(done) => {
                let mut sealing = done.into_iter().map(|s| {
                    let version = live.version_for(s.start_ns, s.end_ns);
                    (s, version)
                });
                if sealing.any(|s| seal_tx.send(s).is_err()) {
                    break now;
                }
            }
            Err(e) => {
                failure = Some(e.into());
                break now;
            }
        }
    };
    drop(sources);
    let mut versions = live.into_versions();
    for capture in rx.try_iter() {
        feed(&mut segmenter, &mut masking, capture);
    }
    if failure.is_none() {
        match segmenter.finish(stop_ns) {
            Ok(done) => done.into_iter().for_each(|s| {
                let version = versions.for_segment(s.start_ns, s.end_ns);
                let _ = seal_tx.send((s, version));
            }),
            Err(e) => failure = Some(e.into()),
        }
    }
    drop(seal_tx);
    let written = writer.join().expect("sealer thread panicked");
    if let Some(r) = &report {
        set_report(r, |a| {
            a.recording = false;
            a.screen = false;
            a.triggers_down.clear();
        });
    }
    if let Some(uploader) = uploader {
        uploader.stop(options.drain_on_stop);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let (segments, bytes) = written?;
    tracing::info!(session = %session_id, segments, "recording stopped");
    Ok(RecordSummary {
        session_id,
        session_dir: spool.session_dir(session_id),
        segments,
        bytes,
        recorded: Duration::from_nanos(stop_ns - origin),
    })
}
