//! What one recording is asked to do: the local configuration, or the vault's policy in its place.

use std::path::PathBuf;
use std::time::Duration;

use vigil_capture::ScreenConfig;
use vigil_media::EncoderConfig;
use vigil_spool::uploader::UploaderConfig;

/// What to record and where.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Spool folder.
    pub spool: PathBuf,
    /// `age1…` recipients: the only ones before enrollment, escrow recipients added to the
    /// vault's after it. Recording is refused without a valid one.
    pub recipients: Vec<String>,
    /// How the uploader delivers (enrolled agents only).
    pub upload: UploaderConfig,
    /// Unacknowledged bytes the spool may hold; capture stops when it is reached.
    pub quota_bytes: u64,
    /// How long a stop waits for uploads in flight and due.
    pub drain_on_stop: Duration,
    /// Stop after this long (`None`: until stopped).
    pub duration: Option<Duration>,
    /// Segment length.
    pub segment: Duration,
    /// Delay line length.
    pub delay: Duration,
    /// Screen capture (`None`: voice only).
    pub screen: Option<ScreenConfig>,
    /// Record voice (false: both voice tracks are silenced by a mask span from the start).
    pub voice: bool,
    /// Microphone device id (`None`: default).
    pub microphone: Option<String>,
    /// System-audio output id (`None`: default).
    pub system_audio: Option<String>,
    /// A second output mixed into the system-audio track (`None`: the OS communications
    /// device where there is one).
    pub communications_output: Option<String>,
    /// Encoder settings.
    pub encoder: EncoderConfig,
    /// Silence both voice tracks while DTMF tones sound.
    pub dtmf_masking: bool,
    /// Mask sensitive fields when they gain focus (accessibility watcher).
    pub focus_masking: bool,
    /// Site masking rules, ahead of the built-in payment rules.
    pub mask_rules: Vec<vigil_mask::Rule>,
    /// Whether the agent may pause, and for how long at most.
    pub pause_allowed: bool,
    /// The longest manual pause.
    pub pause_max: Duration,
    /// All pauses of a day together.
    pub pause_daily_budget: Duration,
    /// The longest API mask.
    pub api_mask_max: Duration,
    /// Serve the local control API on this loopback port (0: any free one); `None`: off.
    pub control_port: Option<u16>,
    /// The vault's policy key as IT pinned it (managed `[vault]`): policy is verified with it,
    /// not with the key in the user's `enrollment.json`.
    pub pinned_policy_key: Option<String>,
}
