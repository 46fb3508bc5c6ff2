//! One recording session: started once every source is open, stepped one loop turn at a time
//! (decisions, one input, the heartbeat, encoding), finished with the segment in progress.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{never, unbounded, Receiver};
use uuid::Uuid;
use vigil_capture::{Capture, Clock, ScreenConfig, SourceHandle};
use vigil_mask::{MaskController, RuleSet, TriggerEvent};
use vigil_media::{MaskTimelineHandle, Segmenter, SegmenterConfig, VoiceSources};
use vigil_proto::policy::SignedPolicy;
use vigil_spool::uploader::Uploader;
use vigil_spool::Spool;

use super::decisions::Decisions;
use super::error::RecordError;
use super::heartbeat::Heartbeat;
use super::sources::Sources;
use crate::control::{ControlEndpoint, ControlRequest, ControlServer, ServeError};
use crate::delivery::{open_identity, wait_under_quota, Identity};
use crate::enrollment::Enrollment;
use crate::keystore::PolicyFloor;
use crate::live_policy::{apply_to_options, screen_template, LiveSession};
use crate::masking::{FocusWatchdog, Masking, PausePolicy};
use crate::options::RecordOptions;
use crate::policy_sync::{load_last_good, PolicySync, PolicyTrust};
use crate::sealing::{SealerThread, SessionInfo};

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

/// Whether the session goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Still recording: step again.
    Recording,
    /// Stopped (asked to, its duration passed, or it failed): finish it.
    Stopped,
}

/// How the session ended.
enum SessionEnd {
    /// Stopped cleanly at this instant of the session clock.
    Stopped(u64),
    /// Failed; finishing cleans up and reports it.
    Failed(RecordError),
}

/// What one loop turn took in, besides the time (trigger events and policies are rare and
/// large: boxed).
enum Input {
    Capture(Capture),
    Trigger(Box<TriggerEvent>),
    Control(ControlRequest),
    Policy(Box<SignedPolicy>),
    /// Every capture source is gone.
    CapturesClosed,
    TriggersClosed,
    ControlsClosed,
    PoliciesClosed,
    /// Nothing came for 20 ms.
    Idle,
}

/// Services that run beside the session and stop at its end, in this order.
struct Services {
    _watchdog: Option<FocusWatchdog>,
    _policy_sync: Option<PolicySync>,
    _control: Option<ControlServer>,
}

/// A recording session between its start and its finish.
pub(super) struct RecordingSession {
    stop: Arc<AtomicBool>,
    spool: Spool,
    clock: Clock,
    session_id: Uuid,
    origin_ns: u64,
    end_at: Option<u64>,
    sources: Vec<SourceHandle>,
    captures: Receiver<Capture>,
    segmenter: Segmenter,
    decisions: Decisions,
    live: LiveSession,
    policies: Receiver<SignedPolicy>,
    heartbeat: Heartbeat,
    sealer: SealerThread,
    uploader: Option<Uploader>,
    drain_on_stop: Duration,
    services: Services,
    end: Option<SessionEnd>,
}

/// Hands captured media to the segmenter, after the masking stage has seen new audio.
fn feed(segmenter: &mut Segmenter, masking: &mut Masking, capture: Capture) {
    if let Capture::Audio(chunk) = &capture {
        masking.on_audio(chunk);
    }
    segmenter.push(capture);
}

/// The vault's trust (enrolled agents) and the last good policy it signed, if any; that policy's
/// settings replace the local ones in `options`. Also the screen settings to start from when a
/// policy turns the screen on (display, pointer: the local ones).
fn take_vault_policy(
    spool: &Spool,
    options: &mut RecordOptions,
) -> Result<(Option<PolicyTrust>, Option<SignedPolicy>, ScreenConfig), RecordError> {
    let trust = match Enrollment::load(spool.root())? {
        Some(e) => Some(PolicyTrust {
            policy_key: e.trusted_policy_key(options.pinned_policy_key.as_deref())?,
            receipt_key: vigil_spool::uploader::ReceiptKey::new(e.receipt_key()?),
            device_id: e.device_id,
            floor: PolicyFloor::of(&e.key),
        }),
        None => None,
    };
    let kept = trust
        .as_ref()
        .map_or(Ok(None), |t| load_last_good(&spool.config_dir(), t));
    let screen_template = screen_template(options);
    // A kept policy that was refused (edited, or rolled back to an older one) does not hand
    // the recording to the local files, which the recorded person may write: until the vault
    // answers, the agent records under the vault's defaults (masking on, voice and screen on).
    let last_good = kept.unwrap_or_else(|_| {
        apply_to_options(options, &vigil_proto::policy::Policy::default());
        tracing::warn!("recording under the vault's defaults until the vault sends its policy");
        None
    });
    if let Some(policy) = &last_good {
        apply_to_options(options, &policy.document.policy);
        tracing::info!(
            version = policy.document.version,
            "recording under the vault's policy"
        );
    }
    Ok((trust, last_good, screen_template))
}

/// The media stage's settings.
fn segmenter_config(options: &RecordOptions) -> SegmenterConfig {
    let microphone = options.microphone.as_deref().unwrap_or("default");
    let system_audio = options.system_audio.as_deref().unwrap_or("default output");
    SegmenterConfig {
        segment_ns: options.segment.as_nanos() as u64,
        delay_ns: options.delay.as_nanos() as u64,
        encoder: options.encoder.clone(),
        voice_sources: VoiceSources {
            microphone: microphone.into(),
            system_audio: system_audio.into(),
        },
    }
}

/// The masking stage of a session, filling `timeline`.
fn start_masking(
    options: &RecordOptions,
    timeline: MaskTimelineHandle,
    paused_today_ns: u64,
) -> Result<Masking, RecordError> {
    let mut masking = Masking::new(
        timeline,
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
    masking.set_paused_today(paused_today_ns);
    Ok(masking)
}

/// The local control API, when configured; its requests come on the returned channel.
fn start_control(
    options: &RecordOptions,
) -> Result<(Option<ControlServer>, Receiver<ControlRequest>), RecordError> {
    let (control_tx, control_rx) = unbounded::<ControlRequest>();
    let server = match options.control_port {
        Some(port) => {
            let folder = ControlEndpoint::folder().map_err(ServeError::from)?;
            Some(ControlServer::start(port, &folder, control_tx)?)
        }
        None => None,
    };
    Ok((server, control_rx))
}

/// The vault's policy updates (enrolled agents): a thread polls for them; they come on the
/// returned channel.
fn start_policy_sync(
    identity: &Identity,
    trust: Option<&PolicyTrust>,
    spool: &Spool,
    heartbeat: &Heartbeat,
    policy_version: u64,
) -> Result<(Option<PolicySync>, Receiver<SignedPolicy>), RecordError> {
    let (policy_tx, policy_rx) = unbounded::<SignedPolicy>();
    let sync = match (&identity.enrollment, trust, &identity.report) {
        (Some(e), Some(t), Some(r)) => {
            heartbeat.recording(policy_version);
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
    Ok((sync, policy_rx))
}

/// What a session needs before it touches a device.
struct Prepared {
    spool: Spool,
    trust: Option<PolicyTrust>,
    last_good: Option<SignedPolicy>,
    screen_template: ScreenConfig,
    identity: Identity,
}

/// Opens the spool, takes the vault's policy into `options` and opens the device identity;
/// waits while the spool is over its quota. Fails closed before any device is touched: no
/// valid recipient, no recording.
fn prepare(options: &mut RecordOptions, stop: &AtomicBool) -> Result<Prepared, RecordError> {
    let spool = Spool::open(&options.spool).map_err(RecordError::Spool)?;
    spool.reconcile().map_err(RecordError::Spool)?;
    // An enrolled agent records as the vault's last good policy says, not as its local file.
    let (trust, last_good, screen_template) = take_vault_policy(&spool, options)?;
    let signed_recipients = last_good
        .as_ref()
        .map(|p| p.document.recipients.as_slice())
        .filter(|r| !r.is_empty());
    let identity = open_identity(
        &spool,
        &options.recipients,
        signed_recipients,
        trust.as_ref().map(|t| &t.receipt_key),
        &options.upload,
    )?;
    wait_under_quota(
        &spool,
        options.quota_bytes,
        identity.uploader.is_some(),
        stop,
    )?;
    Ok(Prepared {
        spool,
        trust,
        last_good,
        screen_template,
        identity,
    })
}

impl RecordingSession {
    /// Opens the spool and the device identity (fails closed: no valid recipient, no
    /// recording), starts the sources, and starts the session once they are open.
    pub(super) fn start(
        mut options: RecordOptions,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, RecordError> {
        let Prepared {
            spool,
            trust,
            last_good,
            screen_template,
            identity,
        } = prepare(&mut options, &stop)?;

        let clock = Clock::new();
        let sources = Sources::start(&options, clock)?;
        let early = sources.await_opened();
        let origin_ns = clock.now_ns();
        let session_id = Uuid::new_v4();
        let session = SessionInfo::new(session_id, clock);
        tracing::info!(session = %session_id, spool = %spool.root().display(), "recording started");
        let mut segmenter = Segmenter::new(segmenter_config(&options), origin_ns)?;
        let heartbeat = Heartbeat::new(identity.report.clone(), spool.config_dir());
        let mut masking = start_masking(
            &options,
            segmenter.mask_timeline(),
            heartbeat.paused_today_ns(),
        )?;
        let (control, controls) = start_control(&options)?;
        for capture in early {
            feed(&mut segmenter, &mut masking, capture);
        }
        let policy_version = last_good.as_ref().map_or(0, |p| p.document.version);
        let mut live = LiveSession::new(
            policy_version,
            last_good.map(|p| p.document.policy),
            ScreenConfig {
                fps: options.encoder.max_fps,
                ..screen_template
            },
            sources.screen,
            sources.screen_tx,
            clock,
            segmenter.mask_timeline(),
        );
        if !options.voice {
            live.start_voice_off(origin_ns);
        }
        let (policy_sync, policies) = start_policy_sync(
            &identity,
            trust.as_ref(),
            &spool,
            &heartbeat,
            policy_version,
        )?;
        let sealer =
            SealerThread::start(session, identity.sealer, spool.clone(), options.quota_bytes);
        let (trigger_tx, triggers) = unbounded::<TriggerEvent>();
        let watchdog = options
            .focus_masking
            .then(|| FocusWatchdog::start(clock, trigger_tx, masking.watched_fields()));
        Ok(Self {
            stop,
            spool,
            clock,
            session_id,
            origin_ns,
            end_at: options.duration.map(|d| origin_ns + d.as_nanos() as u64),
            sources: sources.audio,
            captures: sources.captures,
            segmenter,
            decisions: Decisions {
                masking,
                triggers,
                controls,
                clock,
                session_id,
            },
            live,
            policies,
            heartbeat,
            sealer,
            uploader: identity.uploader,
            drain_on_stop: options.drain_on_stop,
            services: Services {
                _watchdog: watchdog,
                _policy_sync: policy_sync,
                _control: control,
            },
            end: None,
        })
    }

    /// One turn of the session's loop; a stopped session stays stopped.
    pub(super) fn step(&mut self) -> Step {
        if self.end.is_none() {
            self.end = self.turn();
        }
        match self.end {
            None => Step::Recording,
            Some(_) => Step::Stopped,
        }
    }

    /// Decisions, one input (or 20 ms without any), the heartbeat, then encoding what has left
    /// the delay line; how the session ended, if it did.
    fn turn(&mut self) -> Option<SessionEnd> {
        self.decisions.decide();
        let input = self.next_input();
        if let Some(end) = self.take(input) {
            return Some(end);
        }
        let now = self.clock.now_ns();
        self.heartbeat
            .update(now, &mut self.decisions.masking, self.live.screen_on());
        if let Some(end) = self.end_at.filter(|end| now >= *end) {
            return Some(SessionEnd::Stopped(end));
        }
        if self.stop.load(Ordering::SeqCst) || self.sealer.is_finished() {
            return Some(SessionEnd::Stopped(now));
        }
        self.encode(now)
    }

    fn next_input(&self) -> Input {
        crossbeam_channel::select! {
            recv(self.captures) -> m => m.map_or(Input::CapturesClosed, Input::Capture),
            recv(self.decisions.triggers) -> m => {
                m.map_or(Input::TriggersClosed, |e| Input::Trigger(Box::new(e)))
            }
            recv(self.decisions.controls) -> m => m.map_or(Input::ControlsClosed, Input::Control),
            recv(self.policies) -> m => {
                m.map_or(Input::PoliciesClosed, |p| Input::Policy(Box::new(p)))
            }
            default(Duration::from_millis(20)) => Input::Idle,
        }
    }

    fn take(&mut self, input: Input) -> Option<SessionEnd> {
        match input {
            Input::Capture(capture) => {
                feed(&mut self.segmenter, &mut self.decisions.masking, capture);
                while let Ok(more) = self.captures.try_recv() {
                    // Between frames too: a backlog of captures must not hold decisions (nor
                    // the extension's host, which waits for each answer).
                    self.decisions.decide();
                    feed(&mut self.segmenter, &mut self.decisions.masking, more);
                }
            }
            Input::CapturesClosed => return Some(SessionEnd::Stopped(self.clock.now_ns())),
            Input::Trigger(event) => self
                .decisions
                .masking
                .on_trigger(&event, self.clock.now_ns()),
            // No watcher (focus masking off): stop listening.
            Input::TriggersClosed => self.decisions.triggers = never(),
            Input::Control(request) => self.decisions.answer(request),
            Input::ControlsClosed => self.decisions.controls = never(),
            Input::Policy(update) => return self.apply_policy(*update),
            Input::PoliciesClosed => self.policies = never(),
            Input::Idle => {}
        }
        None
    }

    fn apply_policy(&mut self, update: SignedPolicy) -> Option<SessionEnd> {
        let version = update.document.version;
        let applied = self.live.apply(
            version,
            update.document.policy,
            &mut self.segmenter,
            &mut self.decisions.masking,
        );
        if let Err(e) = applied {
            return Some(SessionEnd::Failed(e.into()));
        }
        self.heartbeat.policy_applied(version);
        tracing::info!(version, "policy applied");
        None
    }

    /// Encodes what has left the delay line and hands finished segments to the sealer.
    fn encode(&mut self, now: u64) -> Option<SessionEnd> {
        // Decisions also between the frames a tick encodes: encoding a backlog of frames
        // (a busy machine, many mask edges) must not hold them.
        let decisions = &mut self.decisions;
        match self.segmenter.tick_with(now, &mut || decisions.decide()) {
            Ok(done) => {
                for segment in done {
                    let version = self.live.version_for(segment.start_ns, segment.end_ns);
                    if !self.sealer.send(segment, version) {
                        return Some(SessionEnd::Stopped(now));
                    }
                }
                None
            }
            Err(e) => Some(SessionEnd::Failed(e.into())),
        }
    }

    /// Stops the sources, encodes and seals what they captured, waits for uploads in flight
    /// (as long as the options allow), and reports what was recorded or why it failed.
    pub(super) fn finish(self) -> Result<RecordSummary, RecordError> {
        let Self {
            spool,
            clock,
            session_id,
            origin_ns,
            sources,
            captures,
            mut segmenter,
            mut decisions,
            live,
            heartbeat,
            sealer,
            uploader,
            drain_on_stop,
            services,
            end,
            ..
        } = self;
        let end = end.unwrap_or_else(|| SessionEnd::Stopped(clock.now_ns()));
        drop(sources);
        let mut versions = live.into_versions();
        for capture in captures.try_iter() {
            feed(&mut segmenter, &mut decisions.masking, capture);
        }
        let (stop_ns, failure) = match end {
            SessionEnd::Failed(e) => (clock.now_ns(), Some(e)),
            SessionEnd::Stopped(stop_ns) => match segmenter.finish(stop_ns) {
                Ok(done) => {
                    for segment in done {
                        let version = versions.for_segment(segment.start_ns, segment.end_ns);
                        sealer.send(segment, version);
                    }
                    (stop_ns, None)
                }
                Err(e) => (stop_ns, Some(e.into())),
            },
        };
        let sealed = sealer.finish();
        heartbeat.stopped();
        if let Some(uploader) = uploader {
            uploader.stop(drain_on_stop);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let sealed = sealed?;
        tracing::info!(session = %session_id, segments = sealed.segments, "recording stopped");
        drop(services);
        Ok(RecordSummary {
            session_id,
            session_dir: spool.session_dir(session_id),
            segments: sealed.segments,
            bytes: sealed.bytes,
            recorded: Duration::from_nanos(stop_ns - origin_ns),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    #[test]
    fn a_pinned_policy_key_wins_over_an_edited_enrollment() {
        let b64 = |seed: u8| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key();
            base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
        };
        let enrollment = Enrollment {
            vault_url: "https://vault.example".into(),
            device_id: Uuid::from_u128(1),
            // The recorded person put their own key here.
            policy_public_key: b64(2),
            receipt_public_key: b64(3),
            recipients: vec![],
            ca_pem: None,
            key: crate::keystore::KeyLocation::File {
                path: "device.key".into(),
            },
            enrolled_at: String::new(),
        };
        let vaults = enrollment.trusted_policy_key(Some(&b64(1))).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(vaults.as_bytes()),
            b64(1)
        );
        let unpinned = enrollment.trusted_policy_key(None).unwrap();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(unpinned.as_bytes()),
            b64(2)
        );
        assert!(enrollment.trusted_policy_key(Some("not a key")).is_err());
    }
}
