//! The sealing stage: a finished segment's media is encrypted in memory, described by a signed
//! and chained manifest, and written to the spool. Plaintext is dropped here.

use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use uuid::Uuid;
use vigil_capture::Clock;
use vigil_media::FinishedSegment;
use vigil_proto::{sha256_hex, BlobRef, MediaKind, SegmentManifest, Timestamp, MANIFEST_FORMAT};
use vigil_seal::{SealError, Sealer};
use vigil_spool::{Spool, SpoolError, WrittenSegment};

use crate::delivery::{check_quota, DeliveryError};

/// Why a segment was not sealed and written, or why sealing stopped after one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealingError {
    /// Encrypting the media or signing the manifest failed.
    #[error("seal")]
    Seal(#[source] SealError),
    /// Writing the spool failed (a full disk stops the recording).
    #[error("spool")]
    Spool(#[source] SpoolError),
    /// After a segment (kept), the spool's quota was reached or could not be read: capture stops.
    #[error(transparent)]
    Quota(#[from] DeliveryError),
}

/// Session-wide facts that go into every manifest.
pub(crate) struct SessionInfo {
    pub session_id: Uuid,
    pub user: String,
    pub clock: Clock,
}

impl SessionInfo {
    /// A session of the OS user the agent records for.
    pub(crate) fn new(session_id: Uuid, clock: Clock) -> Self {
        Self {
            session_id,
            user: crate::os::os_user(),
            clock,
        }
    }
}

fn timestamp(clock: &Clock, mono_ns: u64) -> Timestamp {
    Timestamp {
        wall: time::OffsetDateTime::from(clock.wall_at(mono_ns)),
        mono_ns,
    }
}

/// Seals, signs and writes one segment, recorded under `policy_version` (0: local settings).
/// The media stage described its files, spans and events as the manifest lists them: this
/// adds what only sealing knows (ciphertext names, sizes and hashes; the chain; the session).
fn seal_segment(
    segment: FinishedSegment,
    policy_version: u64,
    session: &SessionInfo,
    sealer: &mut Sealer,
    spool: &Spool,
) -> Result<WrittenSegment, SealingError> {
    let FinishedSegment {
        sequence,
        start_ns,
        end_ns,
        media,
        events,
        masked,
        last,
    } = segment;
    let mut sealed: Vec<(MediaKind, Vec<u8>)> = Vec::new();
    let mut blobs = Vec::new();
    for blob in media.blobs {
        let ciphertext = sealer
            .seal_blob(&blob.plaintext)
            .map_err(SealingError::Seal)?;
        // The plaintext is not needed any more.
        drop(blob.plaintext);
        blobs.push(BlobRef {
            kind: blob.kind,
            file: Spool::blob_name(sequence, blob.kind),
            size: ciphertext.len() as u64,
            sha256: sha256_hex(&ciphertext),
            container: blob.container,
            tracks: blob.tracks,
        });
        sealed.push((blob.kind, ciphertext));
    }
    let manifest = SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: Uuid::new_v4(),
        device_id: sealer.device_id(),
        user: session.user.clone(),
        session_id: session.session_id,
        sequence,
        call_id: None,
        start: timestamp(&session.clock, start_ns),
        end: timestamp(&session.clock, end_ns),
        blobs,
        masked_spans: masked,
        events,
        policy_version,
        prev_manifest_sha256: None,
        encoder: media.encoder,
        agent_version: env!("CARGO_PKG_VERSION").into(),
        last_in_session: last,
    };
    let signed = sealer.sign(manifest).map_err(SealingError::Seal)?;
    let refs: Vec<(MediaKind, &[u8])> = sealed.iter().map(|(k, b)| (*k, b.as_slice())).collect();
    spool
        .write_segment(session.session_id, &refs, &signed)
        .map_err(SealingError::Spool)
}

/// Segments waiting for the sealer: a slow disk holds neither capture nor the encoder.
const QUEUE: usize = 4;

/// What the sealer wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sealed {
    pub(crate) segments: u64,
    pub(crate) bytes: u64,
}

/// Sealing and spool writes on a thread beside the encoder, so that neither stalls capture.
/// Each segment goes with the policy version it was recorded under.
pub(crate) struct SealerThread {
    segments: Sender<(FinishedSegment, u64)>,
    thread: JoinHandle<Result<Sealed, SealingError>>,
}

impl SealerThread {
    /// Starts sealing for `session`; it stops at the first failure, or once `quota` bytes wait
    /// in the spool.
    pub(crate) fn start(
        session: SessionInfo,
        mut sealer: Sealer,
        spool: Spool,
        quota: u64,
    ) -> Self {
        let (segments, queue) = crossbeam_channel::bounded::<(FinishedSegment, u64)>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("sealer".into())
            .spawn(move || {
                let mut sealed = Sealed {
                    segments: 0,
                    bytes: 0,
                };
                for (segment, policy_version) in queue {
                    let sequence = segment.sequence;
                    let written =
                        seal_segment(segment, policy_version, &session, &mut sealer, &spool)?;
                    tracing::info!(sequence, bytes = written.bytes, "segment sealed");
                    sealed.segments += 1;
                    sealed.bytes += written.bytes;
                    // Ending here stops capture; the segment just sealed is kept.
                    check_quota(&spool, quota)?;
                }
                Ok(sealed)
            })
            .expect("spawn sealer thread");
        Self { segments, thread }
    }

    /// Queues a segment recorded under `policy_version` (waits while the queue is full); false
    /// once the thread has stopped.
    pub(crate) fn send(&self, segment: FinishedSegment, policy_version: u64) -> bool {
        self.segments.send((segment, policy_version)).is_ok()
    }

    /// Whether the thread has stopped (failed, or the quota was reached).
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Seals what is queued, then stops: what was written, or why sealing stopped.
    pub(crate) fn finish(self) -> Result<Sealed, SealingError> {
        drop(self.segments);
        self.thread.join().expect("sealer thread panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_media::{EncodedBlob, EncodedSegment};
    use vigil_proto::EncoderSettings;
    use vigil_seal::{DeviceKey, Recipients};

    /// An age X25519 public key (its identity is not needed: nothing is opened here).
    const RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    fn sealer() -> Sealer {
        Sealer::new(
            Recipients::parse(&[RECIPIENT]).unwrap(),
            DeviceKey::generate(),
        )
    }

    fn session() -> SessionInfo {
        SessionInfo {
            session_id: Uuid::new_v4(),
            user: "agent".into(),
            clock: Clock::new(),
        }
    }

    fn segment(sequence: u64) -> FinishedSegment {
        FinishedSegment {
            sequence,
            start_ns: (sequence - 1) * 1_000_000_000,
            end_ns: sequence * 1_000_000_000,
            media: EncodedSegment {
                blobs: vec![EncodedBlob {
                    kind: MediaKind::Voice,
                    container: "matroska".into(),
                    tracks: Vec::new(),
                    plaintext: vec![7; 1_000],
                }],
                video_frames: 0,
                encoder: EncoderSettings {
                    video_codec: "libx264".into(),
                    video_preset: "veryfast".into(),
                    video_crf: 32,
                    video_max_fps: 5,
                    video_size: (0, 0),
                    audio_codec: "libopus".into(),
                    audio_bitrate: 16_000,
                    audio_sample_rate: 16_000,
                },
            },
            events: Vec::new(),
            masked: Vec::new(),
            last: false,
        }
    }

    #[test]
    fn every_queued_segment_is_sealed_and_written_before_finish_returns() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let info = session();
        let folder = spool.session_dir(info.session_id);
        let thread = SealerThread::start(info, sealer(), spool, u64::MAX);
        assert!(thread.send(segment(1), 0));
        assert!(thread.send(segment(2), 3));
        let sealed = thread.finish().unwrap();
        assert_eq!(sealed.segments, 2);
        assert!(sealed.bytes > 2_000, "two sealed voice files and manifests");
        for name in ["000001.manifest.json", "000002.voice.age"] {
            assert!(folder.join(name).exists(), "{name}");
        }
    }

    #[test]
    fn sealing_stops_at_the_quota_and_keeps_the_segment_that_reached_it() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let info = session();
        let folder = spool.session_dir(info.session_id);
        let thread = SealerThread::start(info, sealer(), spool, 1);
        assert!(thread.send(segment(1), 0));
        while !thread.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(
            !thread.send(segment(2), 0),
            "a stopped sealer takes nothing"
        );
        match thread.finish() {
            Err(SealingError::Quota(DeliveryError::QuotaReached {
                segments, quota, ..
            })) => {
                assert_eq!((segments, quota), (1, 1));
            }
            other => panic!("expected the quota, got {other:?}"),
        }
        assert!(folder.join("000001.manifest.json").exists());
    }
}
