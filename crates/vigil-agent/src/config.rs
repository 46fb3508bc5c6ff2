//! Agent settings from TOML: the managed file (`/etc/vigil/agent.toml`) always, the user's
//! (`--config`) merged under it; command-line flags override both where they may.

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
    /// What IT pins of the vault (`[vault]`, managed settings only).
    pub vault: VaultSection,
    /// The keys managed settings set (`capture.fps`, `recipients`, …): no flag changes them.
    #[serde(skip)]
    managed_keys: std::collections::BTreeSet<String>,
}

/// `[vault]`: what IT pins of its vault, so that a file in the user's spool cannot replace it.
/// Honoured from managed settings only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VaultSection {
    /// The vault's policy-signing key (base64, as `vigil-vault init` prints it): enrollment
    /// refuses a vault that answers with another, and the agent verifies policy with this one,
    /// whatever `enrollment.json` says.
    pub policy_public_key: Option<String>,
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

/// The managed configuration file: in a folder only administrators write (the installers
/// put it there; the registry and managed preferences come with them, issue 16).
#[cfg(all(unix, not(target_os = "macos")))]
pub const MANAGED_CONFIG: &str = "/etc/vigil/agent.toml";
/// The managed configuration file (see the Linux one).
#[cfg(target_os = "macos")]
pub const MANAGED_CONFIG: &str = "/Library/Application Support/Vigil/agent.toml";
/// The managed configuration file (see the Linux one), in the system drive's ProgramData.
#[cfg(windows)]
pub const MANAGED_CONFIG: &str = r"C:\ProgramData\Vigil\agent.toml";

/// Where the managed file is on this machine. Never from an environment variable: the recorded
/// person sets their own (`%ProgramData%` pointed at a folder of theirs would replace IT's
/// settings).
pub fn managed_config_path() -> std::path::PathBuf {
    std::path::PathBuf::from(MANAGED_CONFIG)
}

impl AgentConfig {
    /// The managed file when it exists, with the user's file (`--config`) merged under it.
    pub fn load(user: Option<&Path>) -> Result<Self, ConfigError> {
        let managed = managed_config_path();
        Self::load_layers(managed.exists().then_some(managed.as_path()), user)
    }

    /// Settings from managed `managed` over the user's `user` (brief §7): every key the
    /// managed file sets wins, the user's file fills in the rest, and it may not name
    /// recipients (they come only from the vault, signed, or from managed settings: the
    /// recorded person must not seal their recording to a key of their own).
    pub fn load_layers(managed: Option<&Path>, user: Option<&Path>) -> Result<Self, ConfigError> {
        let mut merged = toml::Table::new();
        if let Some(path) = user {
            merged = read_table(path)?;
            if merged.contains_key("recipients") {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "recipients come only from the vault or from managed settings \
                         ({MANAGED_CONFIG}), not from a user's file"
                    ),
                });
            }
            if merged.contains_key("vault") {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    message: format!(
                        "[vault] is pinned in managed settings ({MANAGED_CONFIG}) only"
                    ),
                });
            }
        }
        let mut managed_keys = std::collections::BTreeSet::new();
        if let Some(path) = managed {
            let table = read_table(path)?;
            dotted_keys(&table, "", &mut managed_keys);
            merge_over(&mut merged, table);
        }
        let path = managed.or(user).map(Path::to_owned).unwrap_or_default();
        let mut config: Self =
            toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path, message })?;
        config.managed_keys = managed_keys;
        Ok(config)
    }

    /// Whether managed settings set `key` (dotted: `capture.fps`).
    pub fn is_managed(&self, key: &str) -> bool {
        self.managed_keys.contains(key)
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

/// One file as a table, refused with its own path when it is not a valid configuration.
fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.to_owned(),
        message,
    };
    // Parsed whole first, so that an unknown key or a bad value names this file.
    let config: AgentConfig = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    config.validate().map_err(invalid)?;
    toml::from_str(&text).map_err(|e| invalid(e.to_string()))
}

/// Every leaf key of `table` as a dotted path (arrays are leaves).
fn dotted_keys(table: &toml::Table, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) => dotted_keys(inner, &format!("{path}."), out),
            _ => {
                out.insert(path);
            }
        }
    }
}

/// `over`'s keys replace `under`'s, section by section (arrays are replaced whole).
fn merge_over(under: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (under.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => {
                merge_over(below, above)
            }
            (_, value) => {
                under.insert(key, value);
            }
        }
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
        let err = AgentConfig::load_layers(None, Some(&p))
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.fps"), "{err}");
        std::fs::write(&p, "[capture]\nfsp = 5\n").unwrap();
        let err = AgentConfig::load_layers(None, Some(&p))
            .unwrap_err()
            .to_string();
        assert!(err.contains("fsp"), "{err}");
        std::fs::write(&p, "[recording]\nsegment_seconds = 5\n").unwrap();
        let ok = AgentConfig::load_layers(None, Some(&p)).unwrap();
        assert_eq!(ok.recording.segment_seconds, 5);
        assert_eq!(ok.capture.fps, 5);
    }

    #[test]
    fn managed_settings_win_and_a_users_file_cannot_name_recipients() {
        let dir = tempfile::tempdir().unwrap();
        let (managed, user) = (
            dir.path().join("managed.toml"),
            dir.path().join("user.toml"),
        );
        std::fs::write(
            &managed,
            "recipients = [\"age1managed\"]\n[masking]\ndtmf = true\n[capture]\nfps = 4\n",
        )
        .unwrap();
        // The user switches DTMF masking off and asks for 10 fps and longer segments.
        std::fs::write(
            &user,
            "[masking]\ndtmf = false\n[capture]\nfps = 10\n[recording]\nsegment_seconds = 20\n",
        )
        .unwrap();
        let config = AgentConfig::load_layers(Some(&managed), Some(&user)).unwrap();
        assert!(
            config.masking.dtmf,
            "the user's file overrode managed DTMF masking"
        );
        assert_eq!(config.capture.fps, 4);
        assert_eq!(
            config.recording.segment_seconds, 20,
            "unmanaged keys come from the user"
        );
        assert_eq!(config.recipients, ["age1managed"]);
        assert!(config.is_managed("capture.fps") && config.is_managed("recipients"));
        assert!(!config.is_managed("recording.segment_seconds"));

        // A user's file pinning a vault key of its own is refused too.
        std::fs::write(&user, "[vault]\npolicy_public_key = \"AAAA\"\n").unwrap();
        let err = AgentConfig::load_layers(Some(&managed), Some(&user))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pinned in managed settings"), "{err}");
        // A user's file naming recipients is refused, managed file or not.
        std::fs::write(&user, "recipients = [\"age1mine\"]\n").unwrap();
        for managed in [Some(managed.as_path()), None] {
            let err = AgentConfig::load_layers(managed, Some(&user))
                .unwrap_err()
                .to_string();
            assert!(err.contains("recipients come only from the vault"), "{err}");
        }
        // A bad managed file is named as such.
        std::fs::write(&managed, "[capture]\nfps = 99\n").unwrap();
        std::fs::write(&user, "").unwrap();
        let err = AgentConfig::load_layers(Some(&managed), Some(&user))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("managed.toml") && err.contains("capture.fps"),
            "{err}"
        );
    }
}
