//! The sealing stage: a finished segment's media is encrypted in memory, described by a signed
//! and chained manifest, and written to the spool. Plaintext is dropped here.

use uuid::Uuid;
use vigil_capture::Clock;
use vigil_media::FinishedSegment;
use vigil_proto::{
    sha256_hex, BlobRef, EncoderSettings, MaskedSpan, MediaKind, SegmentManifest, Timestamp,
    TrackInfo, MANIFEST_FORMAT,
};
use vigil_seal::Sealer;
use vigil_spool::{Spool, WrittenSegment};

use crate::RecordError;

/// Session-wide facts that go into every manifest.
pub(crate) struct SessionInfo {
    pub session_id: Uuid,
    pub user: String,
    pub clock: Clock,
    pub encoder: EncoderSettings,
    pub microphone: String,
    pub system_audio: String,
}

fn timestamp(clock: &Clock, mono_ns: u64) -> Timestamp {
    Timestamp {
        wall: time::OffsetDateTime::from(clock.wall_at(mono_ns)),
        mono_ns,
    }
}

/// Seals, signs and writes one segment, recorded under `policy_version` (0: local settings).
pub(crate) fn seal_segment(
    segment: FinishedSegment,
    policy_version: u64,
    session: &SessionInfo,
    sealer: &mut Sealer,
    spool: &Spool,
) -> Result<WrittenSegment, RecordError> {
    let mut sealed: Vec<(MediaKind, Vec<u8>)> = Vec::new();
    let mut blobs = Vec::new();
    let mut encoder = session.encoder.clone();
    let mut add =
        |kind: MediaKind, plaintext: &[u8], tracks: Vec<TrackInfo>| -> Result<(), RecordError> {
            let ciphertext = sealer.seal_blob(plaintext).map_err(RecordError::Seal)?;
            blobs.push(BlobRef {
                kind,
                file: Spool::blob_name(segment.sequence, kind),
                size: ciphertext.len() as u64,
                sha256: sha256_hex(&ciphertext),
                container: "matroska".into(),
                tracks,
            });
            sealed.push((kind, ciphertext));
            Ok(())
        };
    let track = |role: &str, codec: &str, source: &str| TrackInfo {
        role: role.into(),
        codec: codec.into(),
        source: source.into(),
    };
    if let Some(screen) = &segment.media.screen {
        encoder.video_size = segment.media.video_size;
        add(
            MediaKind::Screen,
            screen,
            vec![track("screen", "h264", "display")],
        )?;
    }
    add(
        MediaKind::Voice,
        &segment.media.voice,
        vec![
            track("microphone", "opus", &session.microphone),
            track("system_audio", "opus", &session.system_audio),
        ],
    )?;
    // The plaintext is not needed any more.
    drop(segment.media);

    let manifest = SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: Uuid::new_v4(),
        device_id: sealer.device_id(),
        user: session.user.clone(),
        session_id: session.session_id,
        sequence: segment.sequence,
        call_id: None,
        start: timestamp(&session.clock, segment.start_ns),
        end: timestamp(&session.clock, segment.end_ns),
        blobs,
        masked_spans: segment
            .masked
            .into_iter()
            .map(|s| MaskedSpan {
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                screen: s.screen.as_str().into(),
                audio: s.audio,
                decided_ns: s.decided_ns,
                reason: s.reason,
                rule_id: s.rule_id,
                trigger: s.trigger,
            })
            .collect(),
        events: segment.events,
        policy_version,
        prev_manifest_sha256: None,
        encoder,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        last_in_session: segment.last,
    };
    let signed = sealer.sign(manifest).map_err(RecordError::Seal)?;
    let refs: Vec<(MediaKind, &[u8])> = sealed.iter().map(|(k, b)| (*k, b.as_slice())).collect();
    spool
        .write_segment(session.session_id, &refs, &signed)
        .map_err(RecordError::Spool)
}
