//! Bounded fuzzing of what reaches the agent from a process the recorded person controls: the
//! control API's requests (anyone holding the control secret) and the browser's native
//! messaging frames, down to the trigger events the extension's messages become. Nothing may
//! panic (a panic would stop masking decisions); whatever parses must be handled.

use proptest::prelude::*;

use super::extension::{ExtensionLink, ExtensionMessage};
use super::server::parse;

/// Messages as the extension sends them, to mutate.
const MESSAGES: [&str; 4] = [
    r#"{"type":"focus","at_wall_ms":1700000000000.5,"field":{"url":"https://shop.example/pay","autocomplete":["cc-number"],"id":"card","rect":{"x":10,"y":200,"width":300,"height":30},"password":false,"has_value":false},"doc":"d1"}"#,
    r#"{"type":"blur","at_wall_ms":1700000000100.0,"has_value":true,"doc":"d1"}"#,
    r#"{"type":"fields","at_wall_ms":1700000000200.0,"fields":[{"key":"d1/1","presence":{"state":"shown","rect":{"x":1,"y":2,"width":3,"height":4}}}],"doc":"d1"}"#,
    r#"{"type":"page","at_wall_ms":1700000000300.0,"url":"https://shop.example/done","title":"Done","doc":"d2"}"#,
];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A message with a few bytes changed, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (
        0..MESSAGES.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
    )
        .prop_map(|(which, edits)| {
            let mut bytes = MESSAGES[which].as_bytes().to_vec();
            for (at, byte, how) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.insert(i, byte),
                    _ => {
                        bytes.remove(i);
                    }
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any method, path and body: a command or a refusal, never a panic.
    #[test]
    fn control_requests_never_panic(
        method in 0..4usize,
        path in prop_oneof![
            Just("/v1/state".to_owned()),
            Just("/v1/mask".to_owned()),
            Just("/v1/pause".to_owned()),
            Just("/v1/resume".to_owned()),
            Just("/v1/extension".to_owned()),
            "/v1/mask/[0-9a-z]{0,40}",
            "/[ -~]{0,30}",
        ],
        body in prop_oneof![
            "[ -~]{0,200}".prop_map(|s| s.into_bytes()),
            mutated(),
        ],
    ) {
        let method = [
            tiny_http::Method::Get,
            tiny_http::Method::Post,
            tiny_http::Method::Delete,
            tiny_http::Method::Put,
        ][method]
            .clone();
        let body = String::from_utf8_lossy(&body);
        let wrapped = format!(r#"{{"message": {body}}}"#);
        let _ = parse(&method, &path, &body);
        let _ = parse(&method, &path, &wrapped);
    }

    /// Mutated extension messages: whatever still parses becomes a bounded number of trigger
    /// events without a panic, whatever the stamps and rectangles say.
    #[test]
    fn extension_messages_never_panic(messages in proptest::collection::vec(mutated(), 1..8)) {
        let mut link = ExtensionLink::default();
        let mut now = 1_000_000_000u64;
        for bytes in &messages {
            if let Ok(message) = serde_json::from_slice::<ExtensionMessage>(bytes) {
                let events = link.on_message(&message, Some("chromium"), now);
                prop_assert!(events.len() <= 64);
            }
            now += 50_000_000;
            let _ = link.check(now);
        }
    }

    /// Native messaging frames: any byte stream reads as messages, an end, or an error.
    #[test]
    fn native_frames_never_panic(stream in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut input = std::io::Cursor::new(stream);
        for _ in 0..20 {
            match crate::native_host::read_message(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
}
