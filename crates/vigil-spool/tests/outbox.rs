//! The outbox's crash-safety on real files and a real SQLite database: rows follow files,
//! a crash between the two is repaired, uploads cut by a crash are retried, acknowledged
//! segments leave nothing behind, and the backlog and heartbeat figures add up.

use ed25519_dalek::SigningKey;
use uuid::Uuid;
use vigil_proto::{
    sha256_hex, BlobRef, EncoderSettings, MediaKind, SegmentManifest, SignedManifest, Timestamp,
    MANIFEST_FORMAT,
};
use vigil_spool::{DeliveryState, Spool};

fn manifest(session: Uuid, sequence: u64, voice: &[u8], last: bool) -> SignedManifest {
    let now = Timestamp {
        wall: time::OffsetDateTime::now_utc(),
        mono_ns: sequence * 1_000,
    };
    let m = SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: Uuid::new_v4(),
        device_id: "dev".into(),
        user: "agent1".into(),
        session_id: session,
        sequence,
        call_id: None,
        start: now.clone(),
        end: now,
        blobs: vec![BlobRef {
            kind: MediaKind::Voice,
            file: Spool::blob_name(sequence, MediaKind::Voice),
            size: voice.len() as u64,
            sha256: sha256_hex(voice),
            container: "matroska".into(),
            tracks: vec![],
        }],
        masked_spans: vec![],
        events: vec![],
        policy_version: 0,
        prev_manifest_sha256: None,
        encoder: EncoderSettings {
            video_codec: "libx264".into(),
            video_preset: "veryfast".into(),
            video_crf: 30,
            video_max_fps: 5,
            video_size: (0, 0),
            audio_codec: "libopus".into(),
            audio_bitrate: 24_000,
            audio_sample_rate: 48_000,
        },
        agent_version: "test".into(),
        last_in_session: last,
    };
    SignedManifest::sign(m, &SigningKey::from_bytes(&[7; 32])).unwrap()
}

fn write(spool: &Spool, session: Uuid, sequence: u64, last: bool) -> u64 {
    let voice = vec![sequence as u8; 1000];
    let m = manifest(session, sequence, &voice, last);
    spool
        .write_segment(session, &[(MediaKind::Voice, &voice)], &m)
        .unwrap()
        .bytes
}

#[test]
fn rows_follow_files_and_acknowledged_segments_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let session = Uuid::new_v4();
    let b1 = write(&spool, session, 1, false);
    let b2 = write(&spool, session, 2, true);
    let backlog = spool.outbox().backlog().unwrap();
    assert_eq!((backlog.segments, backlog.bytes), (2, b1 + b2));
    assert!(backlog.last_upload_ms.is_none());

    let read = spool.read_segment(session, 1).unwrap();
    assert_eq!(read.blobs, vec![(MediaKind::Voice, vec![1u8; 1000])]);

    let claimed = spool.outbox().claim_due(i64::MAX, 10).unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(spool.outbox().claim_due(i64::MAX, 10).unwrap().is_empty());
    spool
        .outbox()
        .acknowledge(session, 1, b"receipt", 1234)
        .unwrap();
    spool.delete_segment(session, 1).unwrap();
    assert_eq!(
        spool.outbox().receipt(session, 1).unwrap().unwrap(),
        b"receipt"
    );
    let names: Vec<String> = std::fs::read_dir(spool.session_dir(session))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("000002.")), "{names:?}");

    let sessions = spool.outbox().sessions(0).unwrap();
    assert_eq!(sessions[&session].produced, 2);
    assert_eq!(sessions[&session].pending, vec![2]);
    assert!(sessions[&session].closed);
    let backlog = spool.outbox().backlog().unwrap();
    assert_eq!((backlog.segments, backlog.last_upload_ms), (1, Some(1234)));
}

#[test]
fn a_crash_is_repaired_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let session = Uuid::new_v4();
    {
        let spool = Spool::open(dir.path()).unwrap();
        write(&spool, session, 1, false);
        write(&spool, session, 2, false);
        write(&spool, session, 3, false);
        // Upload of 1 in flight, 2 acknowledged but its files not yet deleted, then "crash".
        spool.outbox().claim_due(i64::MAX, 1).unwrap();
        spool.outbox().acknowledge(session, 2, b"r", 1).unwrap();
    }
    // The outbox database is lost altogether (deleted by a cleaner, restored from a backup).
    for name in ["outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm"] {
        std::fs::remove_file(dir.path().join(name)).ok();
    }
    let spool = Spool::open(dir.path()).unwrap();
    let repaired = spool.reconcile().unwrap();
    // The database was lost: every complete segment on disk is queued again (the vault
    // answers a re-upload with its first receipt), and nothing is dropped.
    assert_eq!(repaired.requeued, 3);
    assert_eq!(spool.outbox().backlog().unwrap().segments, 3);

    // The usual crash: the database survives.
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path()).unwrap();
        write(&spool, session, 1, false);
        write(&spool, session, 2, false);
        spool.outbox().claim_due(i64::MAX, 1).unwrap();
        spool.outbox().acknowledge(session, 2, b"r", 1).unwrap();
        // A half-written temporary file of segment 3.
        std::fs::write(
            spool.session_dir(session).join(".000003.voice.age.partial"),
            b"x",
        )
        .unwrap();
    }
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(
        spool.outbox().entry(session, 1).unwrap().unwrap().state,
        DeliveryState::Sealed,
        "an upload cut by the crash is retried"
    );
    let repaired = spool.reconcile().unwrap();
    assert_eq!(
        (repaired.requeued, repaired.cleaned, repaired.partials),
        (0, 1, 1)
    );
    let names: Vec<String> = std::fs::read_dir(spool.session_dir(session))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("000001.")), "{names:?}");
}

#[test]
fn refused_segments_are_kept_and_can_be_queued_again() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let session = Uuid::new_v4();
    write(&spool, session, 1, false);
    spool.outbox().claim_due(i64::MAX, 1).unwrap();
    spool
        .outbox()
        .reject(session, 1, "403 revoked_device")
        .unwrap();
    let backlog = spool.outbox().backlog().unwrap();
    assert_eq!((backlog.segments, backlog.rejected), (1, 1));
    assert!(spool.outbox().claim_due(i64::MAX, 1).unwrap().is_empty());
    assert_eq!(spool.outbox().requeue_rejected().unwrap(), 1);
    spool
        .outbox()
        .retry_later(session, 1, "down", i64::MAX - 1)
        .unwrap();
    assert!(
        spool.outbox().claim_due(0, 1).unwrap().is_empty(),
        "not due yet"
    );
    assert_eq!(spool.outbox().claim_due(i64::MAX, 1).unwrap().len(), 1);
}
