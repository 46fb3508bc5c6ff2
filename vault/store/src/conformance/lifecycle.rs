//! Conformance of [`crate::metadata::LifecycleStore`]: retention terms, deletions, holds and
//! tombstones behave alike on every backend.

use uuid::Uuid;

use super::{enrolled, record};
use crate::metadata::lifecycle::{
    Deletion, HoldRecord, HoldRelease, HoldScope, OverlapFilter, ReleaseOutcome, RetentionTerms,
    TombstoneRecord,
};
use crate::metadata::MetadataStore;
use vigil_proto::MediaKind;

fn terms(start: i64, voice: i64, screen: i64) -> RetentionTerms {
    RetentionTerms {
        policy_version: 3,
        ended_at: start + 10,
        voice_expires_at: voice,
        screen_expires_at: screen,
    }
}

/// Terms are fixed once; due segments page by id; deletions are kept once per kind; overlap
/// finds segments by their whole span.
pub fn lifecycle_terms_and_deletions(store: &dyn MetadataStore) {
    let d = enrolled(store, 41);
    let session = Uuid::new_v4();
    let rows: Vec<_> = (1..=4)
        .map(|seq| record(&d, session, seq, 1000 + seq * 10))
        .collect();
    for r in &rows {
        store.insert_segment(r).unwrap();
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.segment_id).collect();
    // Unfixed rows are listed for the sweeper, by id.
    let unfixed = store.segments_without_terms(None, 10).unwrap();
    assert_eq!(unfixed.len(), 4);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(
        unfixed.iter().map(|r| r.segment_id).collect::<Vec<_>>(),
        sorted
    );
    assert_eq!(
        store
            .segments_without_terms(Some(sorted[1]), 10)
            .unwrap()
            .len(),
        2
    );
    // Fixed once: a second call changes nothing.
    for (i, r) in rows.iter().enumerate() {
        let screen = if i < 2 { 2000 } else { 9000 };
        assert!(store
            .set_retention(r.segment_id, &terms(r.recorded_at, 5000, screen))
            .unwrap());
    }
    assert!(!store.set_retention(ids[0], &terms(0, 1, 1)).unwrap());
    assert!(!store
        .set_retention(Uuid::new_v4(), &terms(0, 1, 1))
        .unwrap());
    assert!(store.segments_without_terms(None, 10).unwrap().is_empty());
    let life = store.segment_lifecycle(ids[0]).unwrap().unwrap();
    assert_eq!(life.segment, rows[0]);
    assert_eq!(life.terms, Some(terms(rows[0].recorded_at, 5000, 2000)));
    assert_eq!(life.voice_deleted, None);
    assert!(store.segment_lifecycle(Uuid::new_v4()).unwrap().is_none());

    // A row stored with its terms has them at once, fixed; a duplicate changes nothing.
    let with_terms = record(&d, Uuid::new_v4(), 1, 50);
    let fixed = terms(50, 7000, 6000);
    store
        .insert_segment_with_terms(&with_terms, &fixed)
        .unwrap();
    let life = store
        .segment_lifecycle(with_terms.segment_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        (life.segment, life.terms),
        (with_terms.clone(), Some(fixed))
    );
    assert!(store
        .insert_segment_with_terms(&with_terms, &terms(50, 1, 1))
        .is_err());
    assert!(!store
        .set_retention(with_terms.segment_id, &terms(50, 1, 1))
        .unwrap());
    assert_eq!(
        store
            .segment_lifecycle(with_terms.segment_id)
            .unwrap()
            .unwrap()
            .terms,
        Some(fixed)
    );

    // Due: screens of #1 and #2 at 2000; everything at 5000; nothing before.
    assert!(store.segments_due(1999, None, 10).unwrap().is_empty());
    let due: Vec<Uuid> = store
        .segments_due(2000, None, 10)
        .unwrap()
        .iter()
        .map(|l| l.segment.segment_id)
        .collect();
    let mut first_two = vec![ids[0], ids[1]];
    first_two.sort();
    assert_eq!(due, first_two);
    let page = store.segments_due(5000, None, 3).unwrap();
    assert_eq!(page.len(), 3);
    let rest = store
        .segments_due(5000, Some(page[2].segment.segment_id), 3)
        .unwrap();
    assert_eq!(rest.len(), 1);

    // Deletions: kept once per kind; a segment leaves the due list when both are deleted.
    let expired = Deletion {
        at: 2001,
        reason: "expired".into(),
    };
    assert!(store
        .mark_deleted(ids[0], MediaKind::Screen, &expired)
        .unwrap());
    assert!(!store
        .mark_deleted(
            ids[0],
            MediaKind::Screen,
            &Deletion {
                at: 3000,
                reason: "redacted".into()
            }
        )
        .unwrap());
    assert!(!store
        .mark_deleted(Uuid::new_v4(), MediaKind::Voice, &expired)
        .unwrap());
    let life = store.segment_lifecycle(ids[0]).unwrap().unwrap();
    assert_eq!(life.screen_deleted, Some(expired.clone()));
    assert_eq!(life.deleted(MediaKind::Voice), None);
    assert_eq!(
        store
            .segments_due(2000, None, 10)
            .unwrap()
            .iter()
            .map(|l| l.segment.segment_id)
            .collect::<Vec<_>>(),
        vec![ids[1]]
    );
    assert!(store
        .mark_deleted(ids[0], MediaKind::Voice, &expired)
        .unwrap());
    assert_eq!(store.segments_due(5000, None, 10).unwrap().len(), 3);

    // Overlap: #k spans [1000 + 10k, 1000 + 10k + 10).
    let over = |from, to| -> Vec<i64> {
        store
            .segments_overlapping(&OverlapFilter {
                session: Some(session),
                device: None,
                from,
                to,
            })
            .unwrap()
            .iter()
            .map(|l| l.segment.sequence)
            .collect()
    };
    assert_eq!(over(1025, 1035), vec![2, 3]);
    assert_eq!(over(1030, 1031), vec![3]);
    assert_eq!(over(1020, 1030), vec![2]);
    assert!(over(0, 1010).is_empty());
    assert_eq!(
        store
            .segments_overlapping(&OverlapFilter {
                session: None,
                device: Some(d.id),
                from: 0,
                to: i64::MAX,
            })
            .unwrap()
            .len(),
        5,
        "the four of the session and the one stored with its terms"
    );
}

/// Holds keep every scope (many of them), list active or all, release once.
pub fn lifecycle_holds_and_tombstones(store: &dyn MetadataStore) {
    let sessions: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
    let device = Uuid::new_v4();
    let mut scopes: Vec<HoldScope> = sessions.iter().copied().map(HoldScope::Session).collect();
    scopes.push(HoldScope::Device {
        device,
        from: Some(10),
        to: None,
    });
    scopes.push(HoldScope::Range { from: 5, to: 50 });
    let hold = HoldRecord {
        id: Uuid::new_v4(),
        case_name: "case 1".into(),
        scopes,
        created_by: "cli:test".into(),
        reason: "litigation".into(),
        created_at: 100,
        released: None,
    };
    store.insert_hold(&hold).unwrap();
    let other = HoldRecord {
        id: Uuid::new_v4(),
        case_name: "case 2".into(),
        scopes: vec![HoldScope::Session(sessions[0])],
        created_at: 200,
        ..hold.clone()
    };
    store.insert_hold(&other).unwrap();
    assert_eq!(
        store.holds(false).unwrap(),
        vec![hold.clone(), other.clone()]
    );
    let release = HoldRelease {
        at: 300,
        by: "cli:test".into(),
        reason: "case closed".into(),
    };
    let ReleaseOutcome::Released(released) = store.release_hold(hold.id, &release).unwrap() else {
        panic!("not released")
    };
    assert_eq!(released.released, Some(release.clone()));
    let later = HoldRelease {
        at: 400,
        ..release.clone()
    };
    let ReleaseOutcome::AlreadyReleased(again) = store.release_hold(hold.id, &later).unwrap()
    else {
        panic!("released twice")
    };
    assert_eq!(again.released, Some(release));
    assert_eq!(
        store.release_hold(Uuid::new_v4(), &later).unwrap(),
        ReleaseOutcome::Unknown
    );
    assert_eq!(store.holds(false).unwrap(), vec![other]);
    let all = store.holds(true).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].scopes.len(), 302);
    assert_eq!(all[0], released);

    // Tombstones: one per segment, read back byte for byte.
    let d = enrolled(store, 42);
    let seg = record(&d, Uuid::new_v4(), 1, 10);
    store.insert_segment(&seg).unwrap();
    let t = TombstoneRecord {
        segment_id: seg.segment_id,
        session_id: seg.session_id,
        sequence: 1,
        created_at: 500,
        tombstone: b"{\"tombstone\":{}}".to_vec(),
        sha256: "ab".repeat(32),
    };
    assert!(store.tombstone(seg.segment_id).unwrap().is_none());
    store.insert_tombstone(&t).unwrap();
    assert_eq!(store.tombstone(seg.segment_id).unwrap(), Some(t.clone()));
    assert!(store.insert_tombstone(&t).is_err());
}
