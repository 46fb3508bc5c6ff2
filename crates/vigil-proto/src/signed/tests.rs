use super::*;
use crate::{
    EncoderSettings, MediaKind, SegmentManifest, SignedManifest, Timestamp, MANIFEST_FORMAT,
};
use ed25519_dalek::SigningKey;

fn sample() -> SegmentManifest {
    let at = Timestamp {
        wall: time::OffsetDateTime::UNIX_EPOCH,
        mono_ns: 0,
    };
    SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: uuid::Uuid::nil(),
        device_id: "dev".into(),
        user: "agent1".into(),
        session_id: uuid::Uuid::nil(),
        sequence: 1,
        call_id: None,
        start: at.clone(),
        end: Timestamp {
            mono_ns: 10_000_000_000,
            ..at
        },
        blobs: vec![crate::BlobRef {
            kind: MediaKind::Voice,
            file: "000001.voice.age".into(),
            size: 3,
            sha256: sha256_hex(b"abc"),
            container: "matroska".into(),
            tracks: vec![],
        }],
        masked_spans: vec![],
        events: vec![],
        policy_version: 0,
        prev_manifest_sha256: None,
        encoder: EncoderSettings {
            video_codec: "libx264".into(),
            video_preset: "ultrafast".into(),
            video_crf: 30,
            video_max_fps: 5,
            video_size: (1920, 1080),
            audio_codec: "libopus".into(),
            audio_bitrate: 24_000,
            audio_sample_rate: 48_000,
        },
        agent_version: "0.1.0".into(),
        last_in_session: false,
    }
}

#[test]
fn signed_manifest_round_trips() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let signed = SignedManifest::sign(sample(), &key).unwrap();
    let back = SignedManifest::verify(signed.as_bytes(), Some(&key.verifying_key())).unwrap();
    assert_eq!(back.document, sample());
    assert_eq!(back.digest(), signed.digest());
}

#[test]
fn any_edit_of_the_manifest_breaks_the_signature() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let signed = SignedManifest::sign(sample(), &key).unwrap();
    let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
    let edited = text.replace("\"sequence\":1", "\"sequence\":2");
    assert_ne!(edited, text);
    let err = SignedManifest::verify(edited.as_bytes(), None).unwrap_err();
    assert_eq!(err.kind(), SignedErrorKind::BadSignature);
}

#[test]
fn another_signer_is_refused_when_one_is_expected() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let other = SigningKey::from_bytes(&[8; 32]);
    let signed = SignedManifest::sign(sample(), &key).unwrap();
    let err = SignedManifest::verify(signed.as_bytes(), Some(&other.verifying_key())).unwrap_err();
    assert_eq!(err.kind(), SignedErrorKind::WrongSigner);
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for input in [&b""[..], b"{}", b"{\"manifest\":1}", b"\xff\xfe", b"[]"] {
        let err = SignedManifest::verify(input, None).unwrap_err();
        assert_eq!(err.kind(), SignedErrorKind::Malformed);
    }
}

#[test]
fn one_kind_never_verifies_as_another() {
    use crate::api::{Heartbeat, PolicyPoll, SignedHeartbeat, SignedPolicyPoll, HEARTBEAT_KIND};
    let key = SigningKey::from_bytes(&[7; 32]);
    let heartbeat = Heartbeat {
        kind: HEARTBEAT_KIND.into(),
        device_id: uuid::Uuid::nil(),
        sent_at: time::OffsetDateTime::UNIX_EPOCH,
        sessions: vec![],
        backlog: Default::default(),
        agent: None,
    };
    let signed = SignedHeartbeat::sign(heartbeat, &key).unwrap();
    let err = SignedPolicyPoll::verify(signed.as_bytes(), None).unwrap_err();
    assert_eq!(err.kind(), SignedErrorKind::Malformed);
    // Re-wrapped under the poll's field name, the signature holds but the kind does not.
    let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
    let rewrapped = text.replacen("{\"heartbeat\":", "{\"poll\":", 1);
    let err = Signed::<PolicyPoll>::verify(rewrapped.as_bytes(), None).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            SignedErrorKind::Malformed | SignedErrorKind::UnsupportedFormat
        ),
        "{err}"
    );
    // Manifests are files: their envelope ends with a newline; statements do not.
    assert!(SignedManifest::sign(sample(), &key)
        .unwrap()
        .as_bytes()
        .ends_with(b"}\n"));
    assert!(signed.as_bytes().ends_with(b"}"));
    assert_eq!(<SegmentManifest as Document>::SIGNER, KeyRole::Device);
}
