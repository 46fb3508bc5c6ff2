//! The session's capture sources: started before the session's origin, and awaited until each
//! has opened its device.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use vigil_capture::{
    AudioRole, AudioSourceConfig, Capture, CaptureError, Clock, SourceEventKind, SourceHandle,
};

use crate::options::RecordOptions;

/// How long the session's start waits for its sources to open their devices.
const OPEN_WAIT: Duration = Duration::from_secs(3);

/// The running sources and the channel they deliver on.
pub(super) struct Sources {
    /// The screen source, when the screen is recorded.
    pub(super) screen: Option<SourceHandle>,
    /// The audio sources.
    pub(super) audio: Vec<SourceHandle>,
    /// Kept for a screen source the policy may start later.
    pub(super) screen_tx: Sender<Capture>,
    /// What every source delivers.
    pub(super) captures: Receiver<Capture>,
    /// Sources the session's start waits for.
    expected: usize,
}

impl Sources {
    /// Starts the screen (if recorded), the microphone, the system audio and, where there is
    /// one, the communications output.
    pub(super) fn start(options: &RecordOptions, clock: Clock) -> Result<Self, CaptureError> {
        let (tx, captures) = unbounded::<Capture>();
        let screen = match options.screen.clone() {
            Some(screen) => Some(vigil_capture::start_screen(screen, clock, tx.clone())?),
            None => None,
        };
        let mut audio = Vec::new();
        for (role, device) in [
            (AudioRole::Microphone, options.microphone.clone()),
            (AudioRole::SystemAudio, options.system_audio.clone()),
        ] {
            audio.push(vigil_capture::start_audio(
                AudioSourceConfig { role, device },
                clock,
                tx.clone(),
            )?);
        }
        // Not awaited: it idles while the communications output is the default output.
        let expected = audio.len() + usize::from(screen.is_some());
        if options.communications_output.is_some() || vigil_capture::has_communications_device() {
            audio.push(vigil_capture::start_audio(
                AudioSourceConfig {
                    role: AudioRole::Communications,
                    device: options.communications_output.clone(),
                },
                clock,
                tx.clone(),
            )?);
        }
        Ok(Self {
            screen,
            audio,
            screen_tx: tx,
            captures,
            expected,
        })
    }

    /// What the sources sent until every one has opened its device (or for 3 s, whichever is
    /// first), so that slow audio servers do not open every session with a gap.
    pub(super) fn await_opened(&self) -> Vec<Capture> {
        let mut early = Vec::new();
        let deadline = Instant::now() + OPEN_WAIT;
        let mut opened = HashSet::new();
        while opened.len() < self.expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.captures.recv_timeout(left) {
                Ok(Capture::Event(e)) => {
                    if e.kind == SourceEventKind::DeviceOpened
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
        early
    }
}
