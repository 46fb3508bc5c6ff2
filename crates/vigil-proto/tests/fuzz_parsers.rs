//! Bounded fuzzing of the parsers that read bytes from the network or a disk someone else
//! controls: the signed manifest envelope ([`SignedManifest::verify`]), the upload body
//! ([`SegmentBody::parse`]), the receipt ([`SignedReceipt::verify`]), the device's signed
//! heartbeat ([`SignedHeartbeat::verify`]) and policy poll, the vault's signed policy
//! statement (kept by the agent in its spool) and policy layer documents (sent to the vault by
//! people and scripts), with the weakening rules judged on whatever resolves.
//!
//! Properties: arbitrary bytes and mutations of valid messages never panic; whatever still
//! parses re-verifies from its own bytes to the same value; and, signatures being unforgeable,
//! a mutated message that still verifies under the original key carries the original content.
//! The case count is fixed (2,000 per property) so CI stays well under 30 seconds.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use proptest::sample::Index;
use uuid::Uuid;
use vigil_proto::api::{
    Backlog, Heartbeat, PolicyPoll, SessionProgress, SignedHeartbeat, SignedPolicyPoll,
    HEARTBEAT_KIND, POLICY_POLL_KIND,
};
use vigil_proto::frame::SegmentBody;
use vigil_proto::policy::{
    LayerScope, Policy, PolicyLayer, PolicyStatement, SignedPolicy, POLICY_KIND,
};
use vigil_proto::policy_locks::{locked_changes, weakened};
use vigil_proto::receipt::{Receipt, SignedReceipt, RECEIPT_FORMAT, RECEIPT_KIND};
use vigil_proto::{
    sha256_hex, BlobRef, EncoderSettings, MediaKind, SegmentManifest, SignedManifest, Timestamp,
    MANIFEST_FORMAT,
};

const CASES: u32 = 2_000;

fn device_key() -> SigningKey {
    SigningKey::from_bytes(&[11; 32])
}

fn vault_key() -> SigningKey {
    SigningKey::from_bytes(&[12; 32])
}

fn manifest() -> SegmentManifest {
    let at = |s: i64| Timestamp {
        wall: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(s),
        mono_ns: s as u64 * 1_000_000_000,
    };
    SegmentManifest {
        format: MANIFEST_FORMAT,
        segment_id: Uuid::from_u128(1),
        device_id: "device".into(),
        user: "agent1".into(),
        session_id: Uuid::from_u128(2),
        sequence: 2,
        call_id: Some("call-7".into()),
        start: at(10),
        end: at(20),
        blobs: vec![BlobRef {
            kind: MediaKind::Voice,
            file: "000002.voice.age".into(),
            size: 5,
            sha256: sha256_hex(b"voice"),
            container: "matroska".into(),
            tracks: vec![],
        }],
        masked_spans: vec![],
        events: vec![],
        policy_version: 3,
        prev_manifest_sha256: Some("ab".repeat(32)),
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

fn signed_manifest() -> SignedManifest {
    SignedManifest::sign(manifest(), &device_key()).unwrap()
}

fn receipt() -> Receipt {
    Receipt {
        kind: RECEIPT_KIND.into(),
        format: RECEIPT_FORMAT,
        segment_id: Uuid::from_u128(1),
        session_id: Uuid::from_u128(2),
        sequence: 2,
        device_id: Uuid::from_u128(3),
        manifest_sha256: "cd".repeat(32),
        received_at: time::OffsetDateTime::UNIX_EPOCH,
    }
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        kind: HEARTBEAT_KIND.into(),
        device_id: Uuid::from_u128(3),
        sent_at: time::OffsetDateTime::UNIX_EPOCH,
        sessions: vec![SessionProgress {
            session_id: Uuid::from_u128(2),
            produced: 4,
            pending: vec![3, 4],
            closed: false,
        }],
        backlog: Backlog {
            segments: 2,
            bytes: 4096,
            oldest: Some(time::OffsetDateTime::UNIX_EPOCH),
        },
        agent: None,
    }
}

fn body() -> Vec<u8> {
    SegmentBody::encode(
        signed_manifest().as_bytes(),
        &[(MediaKind::Screen, b"screen"), (MediaKind::Voice, b"voice")],
    )
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    /// Copies a run of the input over another place (JSON-ish fragments move around).
    Splice(Index, Index, Index),
    /// Inserts JSON whitespace: outside the signed bytes the envelope still verifies, which
    /// exercises the "still parses" branches.
    Whitespace(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        2 => any::<Index>().prop_map(Mutation::Remove),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Mutation::Splice(a, b, c)),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(i, w)| Mutation::Whitespace(i, w)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let len = bytes.len();
        match m {
            Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
            Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Mutation::Remove(i) => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
            Mutation::Splice(from, run, to) => {
                let start = from.index(len);
                let end = start + run.index(len - start).min(32);
                let fragment = bytes[start..end].to_vec();
                let at = to.index(len);
                bytes.splice(at..at, fragment);
            }
            Mutation::Whitespace(i, w) => {
                bytes.insert(i.index(len + 1), *w.get(b" \n\t\r"));
            }
        }
    }
    bytes
}

/// `PROPTEST_CASES=200000 cargo test -p vigil-proto --test fuzz_parsers` digs deeper locally.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(CASES),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedManifest::verify(&bytes, None);
        let _ = SignedManifest::verify(&bytes, Some(&device_key().verifying_key()));
        let _ = SegmentBody::parse(&bytes);
        let _ = SignedReceipt::verify(&bytes, Some(&vault_key().verifying_key()));
        let _ = SignedHeartbeat::verify(&bytes, None);
    }

    #[test]
    fn mutated_heartbeats_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let original = SignedHeartbeat::sign(heartbeat(), &device_key()).unwrap();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok(verified) = SignedHeartbeat::verify(&bytes, None) {
            let again = SignedHeartbeat::verify(verified.as_bytes(), None).unwrap();
            prop_assert_eq!(&again.document, &verified.document);
            if verified.signer == device_key().verifying_key() {
                prop_assert_eq!(&verified.document, &heartbeat());
            }
        }
    }

    #[test]
    fn mutated_manifests_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let original = signed_manifest();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok(signed) = SignedManifest::verify(&bytes, None) {
            prop_assert_eq!(signed.as_bytes(), bytes.as_slice());
            let again = SignedManifest::verify(signed.as_bytes(), Some(&signed.signer)).unwrap();
            prop_assert_eq!(&again.document, &signed.document);
            prop_assert_eq!(again.digest().0, sha256_hex(&bytes));
            if signed.signer == device_key().verifying_key() {
                // Only the envelope around the signed bytes can have changed.
                prop_assert_eq!(&signed.document, &original.document);
            }
        }
    }

    #[test]
    fn mutated_bodies_parse_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let bytes = apply(body(), &mutations);
        if let Ok(parsed) = SegmentBody::parse(&bytes) {
            // The framing is canonical: what parses re-encodes to the very same bytes.
            prop_assert_eq!(SegmentBody::encode(parsed.manifest, &parsed.blobs), bytes.clone());
            let _ = SignedManifest::verify(parsed.manifest, None);
        }
    }

    #[test]
    fn mutated_receipts_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let key = vault_key();
        let original = SignedReceipt::sign(receipt(), &key).unwrap();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok(verified) = SignedReceipt::verify(&bytes, Some(&key.verifying_key())) {
            prop_assert_eq!(&verified.document, &receipt());
            let again = SignedReceipt::verify(verified.as_bytes(), Some(&key.verifying_key())).unwrap();
            prop_assert_eq!(again.document, verified.document);
        }
    }
}

#[test]
fn valid_messages_verify() {
    let signed = signed_manifest();
    SignedManifest::verify(signed.as_bytes(), Some(&device_key().verifying_key())).unwrap();
    let parsed_body = body();
    let parsed = SegmentBody::parse(&parsed_body).unwrap();
    assert_eq!(parsed.manifest, signed.as_bytes());
    let key = vault_key();
    let r = SignedReceipt::sign(receipt(), &key).unwrap();
    SignedReceipt::verify(r.as_bytes(), Some(&key.verifying_key())).unwrap();
    let h = SignedHeartbeat::sign(heartbeat(), &device_key()).unwrap();
    assert_eq!(
        SignedHeartbeat::verify(h.as_bytes(), None)
            .unwrap()
            .document,
        heartbeat()
    );
}

#[test]
fn whitespace_around_the_signed_bytes_keeps_the_manifest_but_not_the_digest() {
    let original = signed_manifest();
    let mut bytes = original.as_bytes().to_vec();
    bytes.insert(1, b' ');
    let rewrapped = SignedManifest::verify(&bytes, Some(&device_key().verifying_key())).unwrap();
    assert_eq!(rewrapped.document, original.document);
    // The chain and receipts name the bytes as stored, so a re-wrapped envelope is another
    // object: the vault refuses it at a taken position (409), never silently swaps it.
    assert_ne!(rewrapped.digest(), original.digest());
    let inside = bytes.windows(9).position(|w| w == b"\"format\":").unwrap();
    bytes.insert(inside, b' ');
    assert!(SignedManifest::verify(&bytes, None).is_err());
}

fn statement() -> PolicyStatement {
    PolicyStatement {
        kind: POLICY_KIND.into(),
        version: 7,
        device_id: Uuid::from_u128(3),
        issued_at: time::OffsetDateTime::UNIX_EPOCH,
        policy: Policy::default(),
        recipients: vec!["age1vault".into()],
        endorsements: Vec::new(),
    }
}

const LAYER: &str = r#"{"fps": 5, "voice": true, "retention_voice_days": 90,
    "locked": ["dtmf_masking"],
    "mask_rules": [{"id": "crm", "all": {"url": ["crm.example"], "name": ["card"]},
        "action": {"screen": "region", "audio": true, "tail_ms": 700}}]}"#;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_policy_statements_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let key = vault_key();
        let device = Uuid::from_u128(3);
        let original = SignedPolicy::sign(statement(), &key).unwrap();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok(verified) = SignedPolicy::verify_for(&bytes, &key.verifying_key(), device) {
            prop_assert_eq!(&verified.document, &statement());
        }
        let _ = SignedPolicyPoll::verify(&bytes, None);
    }

    #[test]
    fn mutated_rotated_policy_statements_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        use vigil_proto::key_rotation::{verify_policy, EndorsedRole, KeyEndorsement, SignedEndorsement};
        let (old, new) = (vault_key(), SigningKey::from_bytes(&[9; 32]));
        let endorsement = SignedEndorsement::sign(
            KeyEndorsement::new(EndorsedRole::Policy, &new.verifying_key(), time::OffsetDateTime::UNIX_EPOCH),
            &old,
        )
        .unwrap();
        let doc = PolicyStatement {
            endorsements: vec![String::from_utf8(endorsement.as_bytes().to_vec()).unwrap()],
            ..statement()
        };
        let original = SignedPolicy::sign(doc.clone(), &new).unwrap();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok((verified, keys)) = verify_policy(&bytes, &old.verifying_key(), None, Uuid::from_u128(3)) {
            prop_assert_eq!(&verified.document, &doc);
            prop_assert_eq!(keys.policy, new.verifying_key());
        }
    }

    #[test]
    fn mutated_policy_polls_verify_consistently(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let poll = PolicyPoll {
            kind: POLICY_POLL_KIND.into(),
            device_id: Uuid::from_u128(3),
            sent_at: time::OffsetDateTime::UNIX_EPOCH,
            after: 2,
            wait_seconds: 25,
        };
        let original = SignedPolicyPoll::sign(poll.clone(), &device_key()).unwrap();
        let bytes = apply(original.as_bytes().to_vec(), &mutations);
        if let Ok(verified) = SignedPolicyPoll::verify(&bytes, Some(&device_key().verifying_key())) {
            prop_assert_eq!(&verified.document, &poll);
        }
    }

    /// A layer document someone sends: whatever parses validates or is refused with an error,
    /// resolves or is refused, and the weakening and lock rules judge it without panicking.
    #[test]
    fn mutated_policy_layers_never_panic(
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let bytes = apply(LAYER.as_bytes().to_vec(), &mutations);
        let defaults = Policy::default();
        if let Ok(layer) = serde_json::from_slice::<PolicyLayer>(&bytes) {
            for scope in [LayerScope::Organization, LayerScope::Team, LayerScope::Agent] {
                let _ = layer.validate(scope);
            }
            let org: PolicyLayer = serde_json::from_str(LAYER).unwrap();
            let _ = locked_changes(&org, None, &layer);
            if let Ok(resolved) = Policy::resolve(&PolicyLayer::default(), Some(&layer), None) {
                let _ = weakened(&defaults, &resolved);
                let _ = weakened(&resolved, &defaults);
            }
        }
    }
}
