//! Agent settings from a TOML file (managed `/etc/vigil/agent.toml`, or `--config`); command-line
//! flags override them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The agent's configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Spool folder.
    pub spool: Option<PathBuf>,
    /// `age1…` recipients every segment is sealed to.
    pub recipients: Vec<String>,
    /// Capture devices and rates.
    pub capture: CaptureSection,
    /// Segmenting and encoding.
    pub recording: RecordingSection,
    /// Masking.
    pub masking: MaskingSection,
    /// Manual pause.
    pub pause: PauseSection,
    /// The local control API.
    pub control: ControlSection,
    /// Delivery to the vault.
    pub upload: UploadSection,
}

/// `[upload]`: how the spool is delivered to the vault (enrolled agents).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadSection {
    /// Uploads in flight at once.
    pub concurrency: usize,
    /// Upload bandwidth cap in bytes per second (0: none).
    pub max_bytes_per_second: u64,
    /// Unacknowledged bytes the spool may hold before capture stops.
    pub spool_quota_bytes: u64,
    /// Longest retry delay in seconds.
    pub max_retry_seconds: u64,
    /// Heartbeat period in seconds.
    pub heartbeat_seconds: u64,
    /// How long a stop waits for uploads still due, in seconds.
    pub drain_on_stop_seconds: u64,
}

impl Default for UploadSection {
    fn default() -> Self {
        Self {
            concurrency: 2,
            max_bytes_per_second: 0,
            spool_quota_bytes: 2 << 30,
            max_retry_seconds: 30,
            heartbeat_seconds: 30,
            drain_on_stop_seconds: 10,
        }
    }
}

impl UploadSection {
    /// The uploader's settings.
    pub fn uploader(&self) -> vigil_spool::uploader::UploaderConfig {
        vigil_spool::uploader::UploaderConfig {
            concurrency: self.concurrency.max(1),
            max_bytes_per_second: (self.max_bytes_per_second > 0)
                .then_some(self.max_bytes_per_second),
            backoff_base: std::time::Duration::from_secs(1),
            backoff_max: std::time::Duration::from_secs(self.max_retry_seconds.max(1)),
            heartbeat_every: std::time::Duration::from_secs(self.heartbeat_seconds.max(1)),
        }
    }
}

/// `[pause]`: the agent's manual pause (`vigil-agent pause`), off unless IT allows it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PauseSection {
    /// Whether agents may pause at all.
    pub allowed: bool,
    /// The longest pause; recording resumes by itself after it.
    pub max_seconds: u64,
    /// All pauses of a (UTC) day together; a pause beyond it is refused.
    pub daily_budget_seconds: u64,
}

impl Default for PauseSection {
    fn default() -> Self {
        Self {
            allowed: false,
            max_seconds: 300,
            daily_budget_seconds: 1800,
        }
    }
}

/// `[control]`: the local API for CTI/CRM integrations and `vigil-agent status`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSection {
    /// Serve it while recording.
    pub enabled: bool,
    /// Loopback port (0: any free port, published with the secret).
    pub port: u16,
}

impl Default for ControlSection {
    fn default() -> Self {
        Self {
            enabled: true,
            port: 0,
        }
    }
}

/// `[masking]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingSection {
    /// Silence both voice tracks while DTMF tones sound (default on).
    pub dtmf: bool,
    /// Mask payment and password fields when they gain focus (default on). While the
    /// accessibility watcher cannot run, the whole screen is masked.
    pub focus: bool,
    /// Site rules, ahead of the built-in payment rules: an application, window title, page URL
    /// or field pattern, and an action (`[[masking.rules]]`).
    pub rules: Vec<vigil_mask::Rule>,
    /// The longest a CTI/CRM mask through the local API lasts (also when it names no end).
    pub api_mask_max_seconds: u64,
}

impl Default for MaskingSection {
    fn default() -> Self {
        Self {
            dtmf: true,
            focus: true,
            rules: Vec::new(),
            api_mask_max_seconds: 900,
        }
    }
}

/// `[capture]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureSection {
    /// Microphone device id (default: the OS default input).
    pub microphone: Option<String>,
    /// Output whose audio is the caller (default: the OS default output).
    pub system_audio: Option<String>,
    /// A second output softphones play calls on, mixed into the system-audio track (default:
    /// Windows' communications device; none elsewhere).
    pub communications_output: Option<String>,
    /// X11 display (default: `$DISPLAY`).
    pub display: Option<String>,
    /// Screen frames per second.
    pub fps: u32,
    /// Record the screen at all.
    pub screen: bool,
}

impl Default for CaptureSection {
    fn default() -> Self {
        Self {
            microphone: None,
            system_audio: None,
            communications_output: None,
            display: None,
            fps: 5,
            screen: true,
        }
    }
}

/// `[recording]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingSection {
    /// Segment length in seconds.
    pub segment_seconds: u32,
    /// Delay line length in milliseconds (≥ 500).
    pub delay_ms: u32,
    /// x264 preset.
    pub preset: String,
    /// x264 CRF.
    pub crf: u32,
    /// Opus bit rate per voice track.
    pub audio_bitrate: u32,
    /// x264 threads (0 = automatic).
    pub encoder_threads: u32,
    /// Extra x264 options (`key=value:key=value`), for tuning.
    pub x264_params: String,
}

impl Default for RecordingSection {
    fn default() -> Self {
        let enc = vigil_media::EncoderConfig::default();
        Self {
            segment_seconds: 10,
            delay_ms: 600,
            preset: enc.preset,
            crf: enc.crf,
            audio_bitrate: enc.audio_bitrate,
            encoder_threads: enc.threads,
            x264_params: enc.x264_params,
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("invalid configuration {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The managed configuration file on Linux.
pub const MANAGED_CONFIG: &str = "/etc/vigil/agent.toml";

impl AgentConfig {
    /// Loads `path`, or the managed file when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None if Path::new(MANAGED_CONFIG).exists() => PathBuf::from(MANAGED_CONFIG),
            None => return Ok(Self::default()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        Ok(config)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=30).contains(&self.capture.fps) {
            return Err(format!(
                "capture.fps must be 1..=30, not {}",
                self.capture.fps
            ));
        }
        if !(2..=600).contains(&self.recording.segment_seconds) {
            return Err(format!(
                "recording.segment_seconds must be 2..=600, not {}",
                self.recording.segment_seconds
            ));
        }
        if self.recording.delay_ms < 500 {
            return Err(format!(
                "recording.delay_ms must be at least 500, not {}",
                self.recording.delay_ms
            ));
        }
        vigil_mask::RuleSet::with_site_rules(self.masking.rules.clone())
            .map_err(|e| format!("masking.rules: {e}"))?;
        if !(1..=16).contains(&self.upload.concurrency) {
            return Err(format!(
                "upload.concurrency must be 1..=16, not {}",
                self.upload.concurrency
            ));
        }
        if self.upload.spool_quota_bytes < 1 << 16 {
            return Err(format!(
                "upload.spool_quota_bytes must be at least 65536, not {}",
                self.upload.spool_quota_bytes
            ));
        }
        if self.recording.crf > 51 {
            return Err(format!(
                "recording.crf must be 0..=51, not {}",
                self.recording.crf
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_ranges_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "[capture]\nfps = 0\n").unwrap();
        let err = AgentConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("capture.fps"), "{err}");
        std::fs::write(&p, "[capture]\nfsp = 5\n").unwrap();
        let err = AgentConfig::load(Some(&p)).unwrap_err().to_string();
        assert!(err.contains("fsp"), "{err}");
        std::fs::write(
            &p,
            "recipients = [\"age1x\"]\n[recording]\nsegment_seconds = 5\n",
        )
        .unwrap();
        let ok = AgentConfig::load(Some(&p)).unwrap();
        assert_eq!(ok.recording.segment_seconds, 5);
        assert_eq!(ok.capture.fps, 5);
    }
}
