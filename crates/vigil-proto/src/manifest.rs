//! The segment manifest of brief §3: what a segment holds and how it was made.

use serde::{Deserialize, Serialize};

use crate::signed::{sha256_hex, Document, KeyRole, Signed};
use uuid::Uuid;

/// Version of the manifest layout; bumped on any incompatible change.
pub const MANIFEST_FORMAT: u32 = 1;

/// A point in time on both clocks: the wall clock (UTC, RFC 3339) for people and the agent's
/// monotonic clock (nanoseconds since the session's clock origin) for ordering and joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timestamp {
    /// Wall-clock time, RFC 3339 in UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub wall: time::OffsetDateTime,
    /// Monotonic nanoseconds since the session clock's origin.
    pub mono_ns: u64,
}

/// The kind of media a blob carries; retention is set per kind (screen goes before voice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// The screen as H.264 video.
    Screen,
    /// The microphone and the system audio as two Opus tracks.
    Voice,
}

impl MediaKind {
    /// Both kinds.
    pub const ALL: [MediaKind; 2] = [MediaKind::Screen, MediaKind::Voice];

    /// The short name used in file names (`000001.screen.age`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Screen => "screen",
            MediaKind::Voice => "voice",
        }
    }
}

/// One track inside a blob's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackInfo {
    /// What the track holds: `screen`, `microphone` or `system_audio`.
    pub role: String,
    /// Codec name as FFmpeg knows it (`h264`, `opus`).
    pub codec: String,
    /// Source device the track was captured from, as the OS names it.
    pub source: String,
}

/// A sealed blob of the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobRef {
    /// Media kind of the blob.
    pub kind: MediaKind,
    /// File name of the sealed blob, relative to the manifest's folder.
    pub file: String,
    /// Size of the ciphertext in bytes.
    pub size: u64,
    /// SHA-256 of the ciphertext, lower-case hex.
    pub sha256: String,
    /// Container of the plaintext (`matroska`).
    pub container: String,
    /// Tracks in the container, in stream order.
    pub tracks: Vec<TrackInfo>,
}

/// A span of the segment that was masked before encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedSpan {
    /// Start, monotonic nanoseconds.
    pub start_ns: u64,
    /// End, monotonic nanoseconds.
    pub end_ns: u64,
    /// Why the span was masked.
    pub reason: String,
    /// The masking rule that matched, if any.
    pub rule_id: Option<String>,
    /// The trigger that raised it (accessibility, extension, api, dtmf, pause, watchdog).
    pub trigger: String,
    /// What it did to the screen: `full`, `region` or `none`.
    #[serde(default)]
    pub screen: String,
    /// Whether both voice tracks were silenced.
    #[serde(default)]
    pub audio: bool,
    /// When the agent decided to mask (monotonic ns), for decision-latency audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_ns: Option<u64>,
}

/// What happened to a capture source during the segment; never silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureEventKind {
    /// The source opened its device (at start, and after a recovery); detail names it.
    SourceStarted,
    /// The source delivered nothing for a while; the media holds a gap (black or silence).
    Gap,
    /// The source's device changed (default device switched, unplugged, replaced).
    DeviceChanged,
    /// The screen's geometry changed (resolution, monitor added or removed).
    ScreenGeometryChanged,
    /// The source failed and is being restarted.
    SourceFailed,
    /// The source came back after a failure.
    SourceRecovered,
    /// The source was switched off on purpose (the policy turned screen recording off).
    SourceStopped,
}

/// An event of a capture source, stamped on the session clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureEvent {
    /// When it happened, monotonic nanoseconds.
    pub at_ns: u64,
    /// End of the affected period for gaps, monotonic nanoseconds.
    pub until_ns: Option<u64>,
    /// The source: `screen`, `microphone` or `system_audio`.
    pub source: String,
    /// What happened.
    pub kind: CaptureEventKind,
    /// Human-readable detail (device names, geometry); never media or secrets.
    pub detail: String,
}

/// Encoder settings that produced the segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSettings {
    /// Video codec and library (`libx264`).
    pub video_codec: String,
    /// x264 preset.
    pub video_preset: String,
    /// x264 constant rate factor.
    pub video_crf: u32,
    /// Maximum frames per second (variable frame rate: unchanged frames are skipped).
    pub video_max_fps: u32,
    /// Encoded width and height.
    pub video_size: (u32, u32),
    /// Audio codec (`libopus`).
    pub audio_codec: String,
    /// Audio bit rate per track, bits per second.
    pub audio_bitrate: u32,
    /// Audio sample rate.
    pub audio_sample_rate: u32,
}

/// The manifest of one segment (brief §3). Signed by the device key inside a [`crate::SignedManifest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentManifest {
    /// Manifest layout version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// Unique id of the segment.
    pub segment_id: Uuid,
    /// Device id (before enrollment: the device key's id).
    pub device_id: String,
    /// OS user the agent records for.
    pub user: String,
    /// Recording session the segment belongs to.
    pub session_id: Uuid,
    /// Sequence number within the session, from 1.
    pub sequence: u64,
    /// Call id when the segment belongs to a call.
    pub call_id: Option<String>,
    /// Start of the segment.
    pub start: Timestamp,
    /// End of the segment (exclusive).
    pub end: Timestamp,
    /// Sealed blobs, one per media kind.
    pub blobs: Vec<BlobRef>,
    /// Spans masked before encoding.
    pub masked_spans: Vec<MaskedSpan>,
    /// Device changes, gaps and failures during the segment.
    pub events: Vec<CaptureEvent>,
    /// Version of the policy in force.
    pub policy_version: u64,
    /// SHA-256 of the previous manifest of the session (its signed bytes); `None` for the first.
    pub prev_manifest_sha256: Option<String>,
    /// The encoder's settings.
    pub encoder: EncoderSettings,
    /// Version of the agent that made the segment.
    pub agent_version: String,
    /// True for the last segment of a session (the recording stopped cleanly after it).
    pub last_in_session: bool,
}

impl SegmentManifest {
    /// The blob of a given kind, if the segment has one.
    pub fn blob(&self, kind: MediaKind) -> Option<&BlobRef> {
        self.blobs.iter().find(|b| b.kind == kind)
    }
}

/// SHA-256 of a signed manifest's bytes: what the next manifest of the session chains to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDigest(pub String);

/// A manifest with the device's signature, as stored next to the sealed blobs
/// (`NNNNNN.manifest.json`).
pub type SignedManifest = Signed<SegmentManifest>;

impl Document for SegmentManifest {
    const FIELD: &'static str = "manifest";
    const SIGNER: KeyRole = KeyRole::Device;
    const NEWLINE: bool = true;

    fn check(&self) -> Result<(), String> {
        if self.format == MANIFEST_FORMAT {
            Ok(())
        } else {
            Err(format!("manifest format {}", self.format))
        }
    }
}

impl Signed<SegmentManifest> {
    /// The digest the next manifest of the session chains to.
    pub fn digest(&self) -> ManifestDigest {
        ManifestDigest(sha256_hex(self.as_bytes()))
    }
}
