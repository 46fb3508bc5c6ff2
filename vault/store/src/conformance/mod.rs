//! The storage conformance suite: every [`MetadataStore`] backend must pass these. Public (but
//! hidden) so that the integration tests run it against servers they start; each function
//! expects an empty store and panics on a failed check.

pub mod access;
pub mod blobs;

use uuid::Uuid;

pub mod lifecycle;

use crate::metadata::{
    AuditDraft, AuditRecord, DeviceRecord, EnrollOutcome, MetadataStore, SegmentFilter,
    SegmentRecord, SessionReport, TokenRecord,
};

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
        recorded_at: 1000 + seq,
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

pub(crate) fn enrolled(store: &dyn MetadataStore, key: u8) -> DeviceRecord {
    let hash = format!("tok{key}");
    store.insert_token(&token(&hash, 1000)).unwrap();
    let EnrollOutcome::Enrolled(d) = store.enroll(&hash, 1, &device(key)).unwrap() else {
        panic!("not enrolled")
    };
    d
}

pub(crate) fn record(
    device: &DeviceRecord,
    session: Uuid,
    seq: i64,
    recorded_at: i64,
) -> SegmentRecord {
    SegmentRecord {
        segment_id: Uuid::new_v4(),
        session_id: session,
        sequence: seq,
        device_id: device.id,
        manifest_sha256: format!("{seq:064}"),
        prev_manifest_sha256: None,
        last_in_session: false,
        recorded_at,
        received_at: 5,
        receipt: vec![1],
    }
}

/// Segments are listed by session, device and recording time (from inclusive, to exclusive).
pub fn segments_are_listed_by_filter(store: &dyn MetadataStore) {
    let a = enrolled(store, 21);
    let b = enrolled(store, 22);
    let (s1, s2) = (Uuid::new_v4(), Uuid::new_v4());
    for (dev, session, seq, at) in [(&a, s1, 1, 100), (&a, s1, 2, 110), (&b, s2, 1, 120)] {
        store
            .insert_segment(&record(dev, session, seq, at))
            .unwrap();
    }
    let count = |f: SegmentFilter| store.segments(&f).unwrap().len();
    assert_eq!(count(SegmentFilter::default()), 3);
    assert_eq!(
        count(SegmentFilter {
            session: Some(s1),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        count(SegmentFilter {
            device: Some(b.id),
            ..Default::default()
        }),
        1
    );
    let window = store
        .segments(&SegmentFilter {
            from: Some(110),
            to: Some(120),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!((window[0].session_id, window[0].sequence), (s1, 2));
}

/// A session's report is replaced by the device's next one.
pub fn session_reports_replace_each_other(store: &dyn MetadataStore) {
    let d = enrolled(store, 31);
    let session = Uuid::new_v4();
    let mut report = SessionReport {
        session_id: session,
        device_id: d.id,
        produced: 3,
        pending: vec![2, 3],
        closed: false,
        reported_at: 50,
    };
    store.put_session_report(&report).unwrap();
    report.produced = 5;
    report.pending = vec![5];
    report.closed = true;
    store.put_session_report(&report).unwrap();
    let all = store.session_reports(None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[&session], report);
    assert!(store
        .session_reports(Some(Uuid::new_v4()))
        .unwrap()
        .is_empty());
}

/// A device's live state is replaced by its next heartbeat's, every column kept (the last
/// policy refusal stays until a newer one).
pub fn agent_states_replace_each_other(store: &dyn MetadataStore) {
    let d = enrolled(store, 32);
    let mut state = crate::metadata::live::AgentStateRow {
        device_id: d.id,
        reported_at: 60,
        agent_version: "1.2.3".into(),
        policy_version: 4,
        recording: true,
        screen: true,
        masked: true,
        paused: false,
        masked_seconds_today: 17,
        paused_seconds_today: 3,
        backlog_segments: 2,
        backlog_bytes: 4096,
        last_refusal: Some("signature does not verify".into()),
        last_refusal_at: Some(55),
        triggers_down: "extension: no browser extension attached".into(),
    };
    store.put_agent_state(&state).unwrap();
    assert_eq!(store.agent_states().unwrap(), vec![state.clone()]);
    state.reported_at = 61;
    state.masked_seconds_today = 18;
    state.triggers_down = String::new();
    let without_refusal = crate::metadata::live::AgentStateRow {
        last_refusal: None,
        last_refusal_at: None,
        ..state.clone()
    };
    store.put_agent_state(&without_refusal).unwrap();
    assert_eq!(store.agent_states().unwrap(), vec![state]);
}

/// Audit records are numbered from 1 and each hash chains to the previous one; the origin
/// is kept and chained.
pub fn audit_log_is_chained(store: &dyn MetadataStore) {
    let draft = |action: &str| AuditDraft {
        at: 7,
        actor: "admin:root".into(),
        action: action.into(),
        target: Some("x".into()),
        reason: None,
        client_addr: (action == "b").then(|| "192.0.2.1".into()),
        user_agent: (action == "b").then(|| "curl/8".into()),
    };
    assert_ne!(
        AuditRecord::chain_hash(2, AuditRecord::GENESIS, &draft("b")),
        AuditRecord::chain_hash(
            2,
            AuditRecord::GENESIS,
            &AuditDraft {
                user_agent: None,
                ..draft("b")
            }
        ),
        "the user agent is chained"
    );
    let first = store.append_audit(&draft("a")).unwrap();
    let second = store.append_audit(&draft("b")).unwrap();
    assert_eq!((first.seq, second.seq), (1, 2));
    assert_eq!(first.prev_sha256, AuditRecord::GENESIS);
    assert_eq!(second.prev_sha256, first.sha256);
    assert_eq!(
        second.sha256,
        AuditRecord::chain_hash(2, &first.sha256, &draft("b"))
    );
    assert_eq!(
        store.audit_records(0, 10).unwrap(),
        vec![first, second.clone()]
    );
    assert_eq!(store.audit_records(1, 10).unwrap(), vec![second]);
}

/// Concurrent inserts (as from parallel uploads) are each stored or refused on their own: a
/// duplicate position fails only itself, and every other row lands.
pub fn concurrent_inserts_commit_independently(store: &dyn MetadataStore) {
    let d = &enrolled(store, 41);
    let session = Uuid::new_v4();
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                // Positions 1..=15, and position 1 a second time.
                let seq = if i == 15 { 1 } else { i + 1 };
                scope.spawn(move || store.insert_segment(&record(d, session, seq, 100)).is_ok())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 15);
    let stored = store.session_sequences(Some(session)).unwrap();
    assert_eq!(stored[&session].sequences, (1..=15).collect::<Vec<i64>>());
}

/// A device changes its key and keeps its id; the old key is found as retired, with when; a
/// stale re-key (signed with a key the device no longer has) and a key already in use are
/// refused without changing anything.
pub fn devices_are_rekeyed(store: &dyn MetadataStore) {
    use crate::metadata::{RekeyOutcome, RetiredDeviceKey};
    let d = enrolled(store, 61);
    let other = enrolled(store, 62);
    assert_eq!(
        store
            .rekey_device(d.id, &[61; 32], &[62; 32], "k62", 500)
            .unwrap(),
        RekeyOutcome::KeyInUse
    );
    assert_eq!(
        store
            .rekey_device(d.id, &[61; 32], &[63; 32], "k63", 500)
            .unwrap(),
        RekeyOutcome::Rekeyed
    );
    let now = store.device_by_key(&[63; 32]).unwrap().unwrap();
    assert_eq!((now.id, now.key_id.as_str()), (d.id, "k63"));
    assert!(store.device_by_key(&[61; 32]).unwrap().is_none());
    let (old, at) = store.device_by_retired_key(&[61; 32]).unwrap().unwrap();
    assert_eq!((old.id, at), (d.id, 500));
    assert_eq!(
        store
            .rekey_device(d.id, &[61; 32], &[64; 32], "k64", 600)
            .unwrap(),
        RekeyOutcome::KeyChanged,
        "signed with the old key again"
    );
    assert_eq!(
        store
            .rekey_device(other.id, &[62; 32], &[61; 32], "k61", 600)
            .unwrap(),
        RekeyOutcome::KeyInUse,
        "a retired key is not reused"
    );
    assert_eq!(
        store.retired_device_keys().unwrap(),
        vec![RetiredDeviceKey {
            device_id: d.id,
            public_key: [61; 32],
            key_id: d.key_id.clone(),
            retired_at: 500,
        }]
    );
}
