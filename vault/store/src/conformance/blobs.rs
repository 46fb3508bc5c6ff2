//! The blob conformance suite: every [`BlobStore`] backend must pass these. Public (but hidden)
//! so that the integration tests run it against the servers they start; each function expects
//! an empty store and panics on a failed check.

use uuid::Uuid;

use crate::blobs::{BlobError, BlobStore};

/// Staged files are invisible until commit, then read back byte for byte and listed.
pub fn stage_commit_get(store: &dyn BlobStore) {
    let session = Uuid::new_v4();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files = [
        ("000001.manifest.json".to_owned(), b"{\"m\":1}".as_slice()),
        ("000001.screen.age".to_owned(), big.as_slice()),
        ("000001.voice.age".to_owned(), b"".as_slice()),
    ];
    let staged = store.stage(session, &files).unwrap();
    assert!(
        store.list(session).unwrap().is_empty(),
        "visible before commit"
    );
    assert!(!store.exists(session, "000001.screen.age").unwrap());
    assert!(matches!(
        store.get(session, "000001.screen.age"),
        Err(BlobError::NotFound { .. })
    ));
    store.commit(staged).unwrap();
    for (name, bytes) in &files {
        assert_eq!(&store.get(session, name).unwrap(), bytes, "{name}");
        assert!(store.exists(session, name).unwrap());
    }
    assert_eq!(
        store.list(session).unwrap(),
        vec![
            "000001.manifest.json",
            "000001.screen.age",
            "000001.voice.age"
        ]
    );
    assert!(store.list(Uuid::new_v4()).unwrap().is_empty());
    // A second segment of the session lands next to the first.
    let staged = store
        .stage(
            session,
            &[("000002.voice.age".to_owned(), b"v2".as_slice())],
        )
        .unwrap();
    store.commit(staged).unwrap();
    assert_eq!(store.list(session).unwrap().len(), 4);
    assert_eq!(store.get(session, "000002.voice.age").unwrap(), b"v2");
}

/// A discarded segment leaves nothing visible.
pub fn discard_leaves_nothing(store: &dyn BlobStore) {
    let session = Uuid::new_v4();
    let staged = store
        .stage(
            session,
            &[("000001.voice.age".to_owned(), b"gone".as_slice())],
        )
        .unwrap();
    store.discard(staged);
    assert!(store.list(session).unwrap().is_empty());
    assert!(!store.exists(session, "000001.voice.age").unwrap());
    assert!(matches!(
        store.get(session, "000001.voice.age"),
        Err(BlobError::NotFound { .. })
    ));
}

/// Names that could leave the session's folder or prefix are refused by every operation.
pub fn bad_names_are_refused(store: &dyn BlobStore) {
    let session = Uuid::new_v4();
    for bad in ["../x", ".hidden", "a/b", "", "a\\b", "..", "x y"] {
        assert!(
            matches!(
                store.stage(session, &[(bad.to_owned(), b"x".as_slice())]),
                Err(BlobError::BadName(_))
            ),
            "stage {bad:?}"
        );
        assert!(
            matches!(store.get(session, bad), Err(BlobError::BadName(_))),
            "get {bad:?}"
        );
        assert!(
            matches!(store.exists(session, bad), Err(BlobError::BadName(_))),
            "exists {bad:?}"
        );
    }
    // A good name after a bad one in the same segment: nothing of it is staged or stored.
    let mixed = [
        ("000001.voice.age".to_owned(), b"ok".as_slice()),
        ("../escape".to_owned(), b"x".as_slice()),
    ];
    assert!(store.stage(session, &mixed).is_err());
    assert!(store.list(session).unwrap().is_empty());
}

/// A deleted file is gone for every reader, its neighbours stay, and deleting again is no
/// error (it reports that nothing was there).
pub fn delete_removes_one_file(store: &dyn BlobStore) {
    let session = Uuid::new_v4();
    let files = [
        ("000001.manifest.json".to_owned(), b"{}".as_slice()),
        ("000001.screen.age".to_owned(), b"screen".as_slice()),
        ("000001.voice.age".to_owned(), b"voice".as_slice()),
    ];
    store.commit(store.stage(session, &files).unwrap()).unwrap();
    assert!(store.delete(session, "000001.screen.age").unwrap());
    assert!(!store.exists(session, "000001.screen.age").unwrap());
    assert!(matches!(
        store.get(session, "000001.screen.age"),
        Err(BlobError::NotFound { .. })
    ));
    assert_eq!(
        store.list(session).unwrap(),
        vec!["000001.manifest.json", "000001.voice.age"]
    );
    assert_eq!(store.get(session, "000001.voice.age").unwrap(), b"voice");
    assert!(!store.delete(session, "000001.screen.age").unwrap());
    assert!(!store.delete(Uuid::new_v4(), "000001.voice.age").unwrap());
    assert!(matches!(
        store.delete(session, "../000001.voice.age"),
        Err(BlobError::BadName(_))
    ));
}

/// Sessions with committed files are listed, with when each file was written; staging
/// leftovers written before a time are swept (stores that stage remotely have none).
pub fn sessions_times_and_staging_sweep(store: &dyn BlobStore) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for session in [a, b] {
        let staged = store
            .stage(session, &[("000001.voice.age".to_owned(), b"v".as_slice())])
            .unwrap();
        store.commit(staged).unwrap();
    }
    let sessions = store.sessions().unwrap();
    assert!(
        sessions.contains(&a) && sessions.contains(&b),
        "{sessions:?}"
    );
    let written = store.written(a).unwrap();
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].0, "000001.voice.age");
    assert!(
        (before - 5..=before + 60).contains(&written[0].1),
        "written at {} (now {before})",
        written[0].1
    );
    assert!(store.written(Uuid::new_v4()).unwrap().is_empty());
    // A segment staged and never committed nor discarded (the process died between).
    let _left = store
        .stage(b, &[("000002.voice.age".to_owned(), b"v".as_slice())])
        .unwrap();
    assert_eq!(store.sweep_staging(before - 3600).unwrap(), 0, "too young");
    let swept = store.sweep_staging(before + 3600).unwrap();
    assert!(swept <= 1);
    assert_eq!(store.sweep_staging(before + 3600).unwrap(), 0, "swept once");
    assert_eq!(store.list(b).unwrap(), vec!["000001.voice.age"]);
}
