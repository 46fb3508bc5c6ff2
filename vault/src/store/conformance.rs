//! The storage conformance suite: every [`MetadataStore`] backend must pass these.

use uuid::Uuid;

use super::{DeviceRecord, EnrollOutcome, MetadataStore, SegmentRecord, TokenRecord};

fn device(key: u8) -> DeviceRecord {
    DeviceRecord {
        id: Uuid::new_v4(),
        public_key: [key; 32],
        key_id: format!("key{key}"),
        hostname: "host".into(),
        user: "agent1".into(),
        team: None,
        enrolled_at: 100,
        revoked_at: None,
    }
}

fn token(hash: &str, expires_at: i64) -> TokenRecord {
    TokenRecord {
        token_sha256: hash.into(),
        team: Some("blue".into()),
        created_at: 0,
        expires_at,
    }
}

/// Tokens: unknown, used once, used twice, expired; revoked keys cannot enroll again.
pub fn tokens_are_single_use_and_expire(store: &dyn MetadataStore) {
    store.insert_token(&token("a", 1000)).unwrap();
    store.insert_token(&token("b", 1000)).unwrap();
    assert_eq!(
        store.enroll("zzz", 10, &device(1)).unwrap(),
        EnrollOutcome::UnknownToken
    );
    let EnrollOutcome::Enrolled(d) = store.enroll("a", 10, &device(1)).unwrap() else {
        panic!("not enrolled")
    };
    assert_eq!(d.team.as_deref(), Some("blue"));
    assert_eq!(
        store.enroll("a", 11, &device(2)).unwrap(),
        EnrollOutcome::TokenUsed
    );
    assert_eq!(
        store.enroll("b", 1000, &device(2)).unwrap(),
        EnrollOutcome::TokenExpired
    );
    assert!(store.revoke_device(d.id, 20).unwrap());
    assert!(!store.revoke_device(Uuid::new_v4(), 20).unwrap());
    assert_eq!(
        store.enroll("b", 30, &device(1)).unwrap(),
        EnrollOutcome::KeyRevoked
    );
    let found = store.device_by_key(&[1; 32]).unwrap().unwrap();
    assert_eq!(found.revoked_at, Some(20));
    assert_eq!(store.devices().unwrap().len(), 1);
    let EnrollOutcome::Enrolled(_) = store.enroll("b", 30, &device(3)).unwrap() else {
        panic!("a refused key must not use up the token")
    };
}

/// Segments: stored, found by position and id, owned by their device, listed per session.
pub fn segments_round_trip(store: &dyn MetadataStore) {
    store.insert_token(&token("t", 1000)).unwrap();
    let EnrollOutcome::Enrolled(d) = store.enroll("t", 1, &device(9)).unwrap() else {
        panic!("not enrolled")
    };
    let session = Uuid::new_v4();
    let segment = |seq: i64, last: bool| SegmentRecord {
        segment_id: Uuid::new_v4(),
        session_id: session,
        sequence: seq,
        device_id: d.id,
        manifest_sha256: format!("{seq:064}"),
        prev_manifest_sha256: (seq > 1).then(|| format!("{:064}", seq - 1)),
        last_in_session: last,
        received_at: 5,
        receipt: vec![seq as u8],
    };
    let first = segment(1, false);
    store.insert_segment(&first).unwrap();
    store.insert_segment(&segment(4, true)).unwrap();
    assert!(
        store.insert_segment(&segment(1, false)).is_err(),
        "same position twice"
    );
    assert_eq!(store.segment(session, 1).unwrap(), Some(first.clone()));
    assert_eq!(store.segment(session, 2).unwrap(), None);
    assert_eq!(
        store.segment_by_id(first.segment_id).unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.session_device(session).unwrap(), Some(d.id));
    assert_eq!(store.session_device(Uuid::new_v4()).unwrap(), None);
    let all = store.session_sequences(None).unwrap();
    assert_eq!(all[&session].sequences, vec![1, 4]);
    assert!(all[&session].closed);
    assert!(store
        .session_sequences(Some(Uuid::new_v4()))
        .unwrap()
        .is_empty());
    store.ping().unwrap();
}
