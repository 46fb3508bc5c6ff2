//! Conformance of [`crate::metadata::AccessStore`]: accounts, sessions, API tokens, the recordings
//! index and audit queries. Each function expects an empty store.

use uuid::Uuid;

use crate::metadata::{
    ApiTokenRecord, AuditDraft, AuditQuery, EnrollOutcome, MediaLinkRecord, MetadataStore,
    RecordingFilter, RecordingRecord, SegmentRecord, SessionRecord, TokenRecord, UserRecord,
};

fn user(name: &str, role: &str) -> UserRecord {
    UserRecord {
        name: name.into(),
        role: role.into(),
        password_hash: "$argon2id$placeholder".into(),
        must_change_password: false,
    }
}

/// Accounts: teams, role changes, disabling (which ends sessions); sessions and API tokens.
pub fn accounts_sessions_and_tokens(store: &dyn MetadataStore) {
    store.create_user(&user("sue", "supervisor")).unwrap();
    store.create_user(&user("ann", "qa_analyst")).unwrap();
    let sue = store.account("sue").unwrap().unwrap();
    assert!(sue.teams.is_empty());
    assert_eq!(sue.disabled_at, None);
    assert!(store
        .set_user_teams("sue", &["south".into(), "north".into(), "north".into()])
        .unwrap());
    assert_eq!(
        store.account("sue").unwrap().unwrap().teams,
        vec!["north".to_owned(), "south".to_owned()]
    );
    assert!(store.set_user_role("ann", "compliance").unwrap());
    assert!(!store.set_user_role("nobody", "admin").unwrap());
    assert!(!store.set_user_teams("nobody", &[]).unwrap());
    let names: Vec<_> = store
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| (a.user.name, a.user.role))
        .collect();
    assert_eq!(
        names,
        vec![
            ("ann".to_owned(), "compliance".to_owned()),
            ("sue".to_owned(), "supervisor".to_owned())
        ]
    );

    let session = SessionRecord {
        id_sha256: "s1".into(),
        csrf_sha256: "c1".into(),
        user_name: "sue".into(),
        created_at: 100,
        last_seen_at: 100,
        expires_at: 1000,
    };
    store.insert_session(&session).unwrap();
    assert_eq!(store.session("s1").unwrap(), Some(session.clone()));
    store.touch_session("s1", 150).unwrap();
    store.touch_session("s1", 120).unwrap();
    assert_eq!(store.session("s1").unwrap().unwrap().last_seen_at, 150);
    store.delete_session("s1").unwrap();
    assert_eq!(store.session("s1").unwrap(), None);
    store.insert_session(&session).unwrap();
    assert!(store.set_user_disabled("sue", Some(200)).unwrap());
    assert_eq!(
        store.session("s1").unwrap(),
        None,
        "disabling ends sessions"
    );
    assert_eq!(
        store.account("sue").unwrap().unwrap().disabled_at,
        Some(200)
    );
    assert!(store.set_user_disabled("sue", None).unwrap());
    // A new password ends every other session of the account and revokes its API tokens.
    let mine = SessionRecord {
        id_sha256: "mine".into(),
        ..session.clone()
    };
    let other = SessionRecord {
        id_sha256: "other".into(),
        ..session.clone()
    };
    store.insert_session(&mine).unwrap();
    store.insert_session(&other).unwrap();
    let sue_token = ApiTokenRecord {
        id: Uuid::new_v4(),
        token_sha256: "sue-token".into(),
        user_name: "sue".into(),
        created_at: 10,
        expires_at: None,
        revoked_at: None,
    };
    store.insert_api_token(&sue_token).unwrap();
    assert!(store
        .set_password("sue", "$argon2id$new", true, Some("mine"), 300)
        .unwrap());
    let sue = store.account("sue").unwrap().unwrap();
    assert_eq!(sue.user.password_hash, "$argon2id$new");
    assert!(sue.user.must_change_password);
    assert!(store.session("mine").unwrap().is_some());
    assert!(store.session("other").unwrap().is_none());
    assert_eq!(
        store.api_token("sue-token").unwrap().unwrap().revoked_at,
        Some(300)
    );
    assert!(store
        .set_password("sue", "$argon2id$new", true, None, 310)
        .unwrap());
    assert!(
        store.session("mine").unwrap().is_none(),
        "a reset ends them all"
    );
    store.delete_session("mine").unwrap();
    assert!(!store.set_password("nobody", "h", false, None, 0).unwrap());

    // A second factor: enrolled unconfirmed, each time step accepted once, in order only.
    assert_eq!(store.totp("sue").unwrap(), None);
    assert!(
        !store.use_totp_step("sue", 5).unwrap(),
        "no factor, no step"
    );
    assert!(store.set_totp("sue", Some("sealed")).unwrap());
    assert_eq!(store.totp("sue").unwrap().unwrap().last_step, None);
    assert!(store.use_totp_step("sue", 100).unwrap());
    assert!(!store.use_totp_step("sue", 100).unwrap(), "a replayed code");
    assert!(!store.use_totp_step("sue", 99).unwrap(), "an older code");
    assert!(store.use_totp_step("sue", 101).unwrap());
    let factor = store.totp("sue").unwrap().unwrap();
    assert_eq!(
        (factor.sealed_secret.as_str(), factor.last_step),
        ("sealed", Some(101))
    );
    assert!(
        !store.set_totp("sue", Some("other")).unwrap(),
        "a new factor never replaces a confirmed one"
    );
    assert_eq!(store.totp("sue").unwrap().unwrap().sealed_secret, "sealed");
    assert!(store.set_totp("sue", None).unwrap());
    for id in ["s1", "s2"] {
        store
            .insert_session(&SessionRecord {
                id_sha256: id.into(),
                ..session.clone()
            })
            .unwrap();
    }
    assert_eq!(
        store.end_sessions(&session.user_name, Some("s1")).unwrap(),
        1
    );
    assert!(store.session("s1").unwrap().is_some() && store.session("s2").unwrap().is_none());
    store.end_sessions(&session.user_name, None).unwrap();
    assert!(store.session("s1").unwrap().is_none());
    assert_eq!(store.totp("sue").unwrap(), None);
    assert!(!store.set_totp("nobody", Some("x")).unwrap());
    for (id, last_seen_at, expires_at) in
        [("live", 500, 2000), ("idle", 100, 2000), ("over", 500, 600)]
    {
        store
            .insert_session(&SessionRecord {
                id_sha256: id.into(),
                last_seen_at,
                expires_at,
                ..session.clone()
            })
            .unwrap();
    }
    assert_eq!(store.delete_expired_sessions(600, 200).unwrap(), 2);
    assert!(store.session("live").unwrap().is_some());
    assert!(store.session("idle").unwrap().is_none());
    assert!(store.session("over").unwrap().is_none());
    assert_eq!(store.account("sue").unwrap().unwrap().disabled_at, None);

    let token = ApiTokenRecord {
        id: Uuid::new_v4(),
        token_sha256: "t1".into(),
        user_name: "ann".into(),
        created_at: 10,
        expires_at: Some(99),
        revoked_at: None,
    };
    store.insert_api_token(&token).unwrap();
    assert_eq!(store.api_token("t1").unwrap(), Some(token.clone()));
    assert_eq!(store.api_token("t2").unwrap(), None);
    assert!(store.revoke_api_token(token.id, 50).unwrap());
    assert!(store.revoke_api_token(token.id, 60).unwrap());
    assert_eq!(store.api_token("t1").unwrap().unwrap().revoked_at, Some(50));
    assert!(!store.revoke_api_token(Uuid::new_v4(), 50).unwrap());
    assert_eq!(store.api_tokens().unwrap().len(), 2);
}

/// The recordings index: written per stored segment, searched by every filter and team scope.
pub fn recordings_are_searched(store: &dyn MetadataStore) {
    store
        .insert_token(&TokenRecord {
            token_sha256: "t".into(),
            team: Some("north".into()),
            created_at: 0,
            expires_at: 1000,
        })
        .unwrap();
    let candidate = crate::metadata::DeviceRecord {
        id: Uuid::new_v4(),
        public_key: [7; 32],
        key_id: "key7".into(),
        hostname: "host".into(),
        user: "ann".into(),
        team: None,
        enrolled_at: 1,
        revoked_at: None,
    };
    let EnrollOutcome::Enrolled(d) = store.enroll("t", 1, &candidate).unwrap() else {
        panic!("not enrolled")
    };
    let session = Uuid::new_v4();
    for seq in 1..=3i64 {
        store
            .insert_segment(&SegmentRecord {
                segment_id: Uuid::new_v4(),
                session_id: session,
                sequence: seq,
                device_id: d.id,
                manifest_sha256: format!("{seq:064}"),
                prev_manifest_sha256: None,
                last_in_session: false,
                recorded_at: 1000 + seq * 10,
                received_at: 5,
                receipt: vec![1],
            })
            .unwrap();
        store
            .put_recording(&RecordingRecord {
                session_id: session,
                sequence: seq,
                device_id: d.id,
                agent: if seq == 3 { "bob" } else { "ann" }.into(),
                team: if seq == 3 { None } else { Some("north".into()) },
                call_id: (seq == 2).then(|| "call-42".into()),
                masked: seq == 1,
                start: 1000 + seq * 10,
                end: 1010 + seq * 10,
                policy_version: if seq == 1 { 4 } else { 5 },
            })
            .unwrap();
    }
    let find = |f: RecordingFilter| -> Vec<i64> {
        store
            .recordings(&RecordingFilter { limit: 100, ..f })
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect()
    };
    assert_eq!(find(RecordingFilter::default()), vec![1, 2, 3]);
    for (id, expected) in [(session, vec![1, 2, 3]), (Uuid::new_v4(), vec![])] {
        let one = RecordingFilter {
            session: Some(id),
            ..Default::default()
        };
        assert_eq!(find(one), expected, "by session");
    }
    let agent = |a: &str| RecordingFilter {
        agent: Some(a.into()),
        ..Default::default()
    };
    assert_eq!(find(agent("ann")), vec![1, 2]);
    let call = RecordingFilter {
        call_id: Some("call-42".into()),
        ..Default::default()
    };
    assert_eq!(find(call), vec![2]);
    let masked = |m: bool| RecordingFilter {
        masked: Some(m),
        ..Default::default()
    };
    assert_eq!(find(masked(true)), vec![1]);
    assert_eq!(find(masked(false)), vec![2, 3]);
    let time = RecordingFilter {
        from: Some(1025),
        to: Some(1040),
        ..Default::default()
    };
    assert_eq!(find(time), vec![2, 3]);
    let policy = |v: i64| RecordingFilter {
        policy_version: Some(v),
        ..Default::default()
    };
    assert_eq!(find(policy(4)), vec![1]);
    assert_eq!(find(policy(5)), vec![2, 3]);
    assert_eq!(find(policy(0)), Vec::<i64>::new());
    let scope = |t: &[&str]| RecordingFilter {
        teams: Some(t.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    assert_eq!(find(scope(&["north", "west"])), vec![1, 2]);
    assert_eq!(find(scope(&[])), Vec::<i64>::new());
    let team = RecordingFilter {
        team: Some("north".into()),
        ..Default::default()
    };
    assert_eq!(find(team), vec![1, 2]);
    assert_eq!(
        store
            .recordings(&RecordingFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    let one = store.recording(session, 2).unwrap().unwrap();
    assert_eq!(one.call_id.as_deref(), Some("call-42"));
    assert_eq!(one.policy_version, 5);
    assert_eq!(store.recording(session, 9).unwrap(), None);
}

/// Media links: found by hash until they expire; expired ones are purged by the next insert.
pub fn media_links_expire(store: &dyn MetadataStore) {
    let link = |hash: &str, expires_at: i64| MediaLinkRecord {
        link_sha256: hash.into(),
        user_name: "ann".into(),
        session_id: Uuid::new_v4(),
        sequence: 3,
        kind: "voice".into(),
        disposition: "inline".into(),
        expires_at,
    };
    let first = link("h1", 160);
    store.insert_media_link(&first, 100).unwrap();
    assert_eq!(store.media_link("h1", 100).unwrap(), Some(first.clone()));
    assert_eq!(store.media_link("h1", 159).unwrap(), Some(first));
    assert_eq!(store.media_link("h1", 160).unwrap(), None);
    assert_eq!(store.media_link("h2", 100).unwrap(), None);
    store.insert_media_link(&link("h2", 300), 200).unwrap();
    assert_eq!(store.media_link("h1", 0).unwrap(), None, "purged");
    assert!(store.media_link("h2", 200).unwrap().is_some());
}

/// Login throttling: failures count up, start again after a quiet time, locks hold until
/// their time, and a success forgets an account's failures.
pub fn login_failures_count_and_lock(store: &dyn MetadataStore) {
    let keys = |k: &[&str]| k.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(store.login_failure("account:ann", 100, 0).unwrap(), 1);
    assert_eq!(store.login_failure("account:ann", 101, 0).unwrap(), 2);
    assert_eq!(store.login_failure("addr:192.0.2.1", 101, 0).unwrap(), 1);
    assert_eq!(
        store
            .login_locked_until(&keys(&["account:ann"]), 101)
            .unwrap(),
        None
    );
    store.lock_login("account:ann", 200).unwrap();
    store.lock_login("addr:192.0.2.1", 150).unwrap();
    let both = keys(&["account:ann", "addr:192.0.2.1"]);
    assert_eq!(store.login_locked_until(&both, 120).unwrap(), Some(200));
    assert_eq!(store.login_locked_until(&both, 200).unwrap(), None);
    assert_eq!(
        store
            .login_locked_until(&keys(&["addr:192.0.2.1"]), 120)
            .unwrap(),
        Some(150)
    );
    // A lock that holds keeps counting; after it and a quiet time the count starts again.
    assert_eq!(store.login_failure("account:ann", 150, 120).unwrap(), 3);
    assert_eq!(store.login_failure("account:ann", 500, 400).unwrap(), 1);
    store.clear_login_failures("account:ann").unwrap();
    assert_eq!(store.login_failure("account:ann", 501, 0).unwrap(), 1);
    assert_eq!(store.login_locked_until(&[], 0).unwrap(), None);
}

/// Audit queries filter by actor, action, target and time, and page by position.
pub fn audit_is_queried(store: &dyn MetadataStore) {
    for (i, (actor, action)) in [
        ("user:ann", "recording.play"),
        ("user:bob", "recording.play"),
        ("user:ann", "recording.download"),
        ("user:ann", "recording.play"),
    ]
    .iter()
    .enumerate()
    {
        store
            .append_audit(&AuditDraft {
                at: 100 + i as i64,
                actor: (*actor).into(),
                action: (*action).into(),
                target: Some(format!("t{i}")),
                reason: Some("review".into()),
                ..Default::default()
            })
            .unwrap();
    }
    let seqs = |q: AuditQuery| -> Vec<i64> {
        store
            .audit_query(&AuditQuery { limit: 100, ..q })
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(seqs(AuditQuery::default()), vec![1, 2, 3, 4]);
    let actor = AuditQuery {
        actor: Some("user:ann".into()),
        ..Default::default()
    };
    assert_eq!(seqs(actor.clone()), vec![1, 3, 4]);
    let both = AuditQuery {
        action: Some("recording.play".into()),
        ..actor.clone()
    };
    assert_eq!(seqs(both), vec![1, 4]);
    let target = AuditQuery {
        target: Some("t1".into()),
        ..Default::default()
    };
    assert_eq!(seqs(target), vec![2]);
    let time = AuditQuery {
        from: Some(101),
        to: Some(103),
        ..Default::default()
    };
    assert_eq!(seqs(time), vec![2, 3]);
    let page = AuditQuery {
        after: 1,
        limit: 2,
        ..actor
    };
    assert_eq!(
        store
            .audit_query(&page)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
}
