//! What the browser extension reports through its native-messaging host (`vigil-agent
//! native-host`), and how the engine turns it into trigger events and a health signal.
//!
//! The extension sees what the accessibility tree does not: `autocomplete` tokens, HTML names
//! and the field's screen rectangle. It stamps each event with the page's clock
//! (`performance.timeOrigin + event.timeStamp`, wall milliseconds); the engine moves the stamp
//! onto the session clock, never later than the arrival and at most 500 ms earlier.

use serde::{Deserialize, Serialize};
use vigil_mask::{FieldInfo, FieldPresence, TriggerEvent, TriggerSource};

/// How far back an extension stamp may place an event: within the delay line (600 ms), so
/// that a span never begins before media already released; never into the future.
const MAX_BACKDATE_NS: u64 = 500_000_000;
/// Without a message (heartbeats come every 2 s) for this long, the host is considered gone.
pub(crate) const HOST_SILENCE_NS: u64 = 6_000_000_000;

/// One message of the extension's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExtensionMessage {
    /// The extension connected to its host.
    Hello {
        /// The extension's version.
        #[serde(default)]
        version: Option<String>,
    },
    /// Still connected.
    Heartbeat,
    /// A page was shown (top frame).
    Page {
        /// When, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
        /// The page's URL.
        url: String,
        /// The page's title.
        #[serde(default)]
        title: Option<String>,
    },
    /// A form field gained focus.
    Focus {
        /// When, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
        /// What identifies it (never its value).
        field: Box<FieldInfo>,
    },
    /// The focused field lost focus.
    Blur {
        /// When, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
        /// Whether it holds a value.
        #[serde(default)]
        has_value: bool,
    },
    /// Where the page's candidate fields (payment-like, or focused before, holding a value)
    /// and card numbers shown as text are: sent by the top frame of a visible page whenever
    /// one moves, shows, hides or empties, and every 100 ms while one is shown (its position
    /// is stale, and the whole screen masked, without it); `gone` for each when its page
    /// goes. Rectangles only, never text.
    Fields {
        /// When the sample was taken, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
        /// One entry per field or piece of text.
        #[serde(default)]
        fields: Vec<FieldReport>,
    },
    /// The top frame's page is going (pagehide) or its tab went to the background: what the
    /// tab shows next is unknown until a page settles.
    Leaving {
        /// When, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
    },
    /// The page now shown (a load, a restore from the back/forward cache, a tab brought to the
    /// front) has sent its first `fields` report.
    Settled {
        /// When, in wall milliseconds.
        #[serde(default)]
        at_wall_ms: Option<f64>,
    },
    /// The browser closed the host's input: the extension is gone on purpose (browser closed).
    Bye,
}

/// One field (or card number shown as text) in a [`ExtensionMessage::Fields`] report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// Its identity, stable while its page lives.
    pub key: String,
    /// Where it is.
    pub presence: FieldPresence,
    /// What it is (the first report of it; the agent's rules decide whether it is held).
    #[serde(default)]
    pub field: Option<FieldInfo>,
    /// When it was first seen holding a value, if earlier than the report (a form a reload
    /// restored before the script could look), in wall milliseconds.
    #[serde(default)]
    pub since_wall_ms: Option<f64>,
}

/// Wall time now, in milliseconds since the epoch.
fn wall_now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// How old an event stamped `at_wall_ms` is now (0 when unstamped or from the future).
fn age_ns(at_wall_ms: Option<f64>) -> u64 {
    let Some(at_wall_ms) = at_wall_ms.filter(|t| t.is_finite()) else {
        return 0;
    };
    ((wall_now_ms() - at_wall_ms).max(0.0) * 1e6) as u64
}

/// The session-clock time of an event stamped `at_wall_ms`, received at `now_ns`.
fn session_time(now_ns: u64, at_wall_ms: Option<f64>) -> u64 {
    now_ns.saturating_sub(age_ns(at_wall_ms).min(MAX_BACKDATE_NS))
}

/// What a field report `age_ns` old still says when it arrives: one older than the agent can date back
/// (the browser or the host lagged) tells where the field was, not where it is, so a shown or
/// hidden field's place is unknown now (the whole screen); empty or gone stays so.
fn presence_now(presence: FieldPresence, age_ns: u64) -> FieldPresence {
    match presence {
        FieldPresence::Shown { .. } | FieldPresence::Hidden if age_ns > MAX_BACKDATE_NS => {
            FieldPresence::Shown { rect: None }
        }
        other => other,
    }
}

/// The extension's connection as the engine sees it.
#[derive(Debug, Default)]
pub(crate) struct ExtensionLink {
    /// When the host last spoke, while attached.
    last_seen_ns: Option<u64>,
    /// Whether a "host gone" event is out (the screen is masked).
    reported_down: bool,
    /// Whether the host has said anything since it (re)started.
    attached: bool,
    /// The browser the host runs under.
    app: Option<String>,
}

impl ExtensionLink {
    /// Trigger events for one message received at `now_ns` from a host running under `app`.
    pub(crate) fn on_message(
        &mut self,
        message: &ExtensionMessage,
        app: Option<&str>,
        now_ns: u64,
    ) -> Vec<TriggerEvent> {
        let source = TriggerSource::Extension;
        let mut events = Vec::new();
        if tracing::enabled!(tracing::Level::TRACE) {
            // The kind and stamp only: a message's fields may describe a card field.
            let kind = serde_json::to_value(message).ok().and_then(|v| {
                Some((
                    v.get("type")?.as_str()?.to_owned(),
                    v.get("at_wall_ms").cloned(),
                ))
            });
            tracing::trace!(?kind, "extension message");
        }
        if matches!(message, ExtensionMessage::Bye) {
            self.last_seen_ns = None;
            self.attached = false;
        } else {
            self.last_seen_ns = Some(now_ns);
            self.app = app.map(str::to_string).or(self.app.take());
            if !std::mem::replace(&mut self.attached, true) && !self.reported_down {
                events.push(TriggerEvent::Health {
                    at_ns: now_ns,
                    source,
                    healthy: true,
                    detail: "browser extension attached".into(),
                });
            }
        }
        if self.reported_down {
            self.reported_down = false;
            events.push(TriggerEvent::Health {
                at_ns: now_ns,
                source,
                healthy: true,
                detail: String::new(),
            });
        }
        match message {
            ExtensionMessage::Hello { .. }
            | ExtensionMessage::Heartbeat
            | ExtensionMessage::Bye => {}
            ExtensionMessage::Page {
                at_wall_ms,
                url,
                title,
            } => events.push(TriggerEvent::FocusGained {
                at_ns: session_time(now_ns, *at_wall_ms),
                source,
                field: FieldInfo {
                    app: self.app.clone(),
                    url: Some(url.clone()),
                    window_title: title.clone(),
                    ..FieldInfo::default()
                },
            }),
            ExtensionMessage::Focus { at_wall_ms, field } => {
                let mut field = FieldInfo::clone(field);
                field.app = field.app.or_else(|| self.app.clone());
                events.push(TriggerEvent::FocusGained {
                    at_ns: session_time(now_ns, *at_wall_ms),
                    source,
                    field,
                });
            }
            ExtensionMessage::Blur {
                at_wall_ms,
                has_value,
            } => events.push(TriggerEvent::FocusLost {
                at_ns: session_time(now_ns, *at_wall_ms),
                source,
                has_value: Some(*has_value),
            }),
            ExtensionMessage::Leaving { at_wall_ms } => events.push(TriggerEvent::PageLeaving {
                at_ns: session_time(now_ns, *at_wall_ms),
                source,
            }),
            ExtensionMessage::Settled { at_wall_ms } => events.push(TriggerEvent::PageSettled {
                at_ns: session_time(now_ns, *at_wall_ms),
                source,
            }),
            ExtensionMessage::Fields { at_wall_ms, fields } => {
                let at_ns = session_time(now_ns, *at_wall_ms);
                let age = age_ns(*at_wall_ms);
                // Where a first sighting's time goes: in the page (change → report) and on the
                // way (report → here). Times only.
                let first_seen = fields
                    .iter()
                    .filter_map(|f| f.since_wall_ms)
                    .reduce(f64::min);
                tracing::debug!(
                    transit_ms = age as f64 / 1e6,
                    in_page_ms = first_seen.zip(*at_wall_ms).map(|(s, a)| a - s),
                    reports = fields.len(),
                    "extension field report"
                );
                events.extend(fields.iter().map(|report| {
                    let field = report.field.clone().map(|mut f| {
                        f.app = f.app.or_else(|| self.app.clone());
                        f
                    });
                    TriggerEvent::FieldState {
                        at_ns: report
                            .since_wall_ms
                            .map_or(at_ns, |since| session_time(now_ns, Some(since)).min(at_ns)),
                        source,
                        key: report.key.clone(),
                        presence: presence_now(report.presence, age),
                        field,
                    }
                }));
            }
        }
        events
    }

    /// A "host gone" event when an attached host fell silent (killed, hung): the screen is
    /// masked until it is back.
    pub(crate) fn check(&mut self, now_ns: u64) -> Option<TriggerEvent> {
        let silent = self
            .last_seen_ns
            .is_some_and(|seen| now_ns.saturating_sub(seen) > HOST_SILENCE_NS);
        if !silent || self.reported_down {
            return None;
        }
        self.reported_down = true;
        Some(TriggerEvent::Health {
            at_ns: now_ns,
            source: TriggerSource::Extension,
            healthy: false,
            detail: "the browser extension's host stopped answering".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn messages_parse_as_the_extension_sends_them() {
        let focus: ExtensionMessage = serde_json::from_str(
            r#"{"type":"focus","at_wall_ms":1700000000000.5,"field":{"url":"https://shop.example/pay",
            "autocomplete":["cc-number"],"id":null,"rect":{"x":10,"y":200,"width":300,"height":30},
            "password":false,"has_value":false}}"#,
        )
        .unwrap();
        let ExtensionMessage::Focus { field, .. } = focus else {
            panic!()
        };
        assert_eq!(field.autocomplete, vec!["cc-number"]);
        assert_eq!(field.rect.map(|r| r.y), Some(200));
        let blur: ExtensionMessage =
            serde_json::from_str(r#"{"type":"blur","at_wall_ms":1.0,"has_value":true}"#).unwrap();
        assert!(matches!(
            blur,
            ExtensionMessage::Blur {
                has_value: true,
                ..
            }
        ));
    }

    #[test]
    fn stamps_move_back_at_most_500_ms_and_never_forward() {
        let now_wall = wall_now_ms();
        let now = 100 * S;
        let t = session_time(now, Some(now_wall - 30.0));
        assert!(
            now - t >= 29_000_000 && now - t < 500_000_000,
            "{}",
            now - t
        );
        assert_eq!(
            session_time(now, Some(now_wall - 60_000.0)),
            now - MAX_BACKDATE_NS
        );
        assert!(session_time(now, Some(now_wall + 60_000.0)) <= now);
        assert_eq!(session_time(now, None), now);
    }

    #[test]
    fn a_report_older_than_the_agent_can_date_back_leaves_the_place_unknown() {
        let now_wall = wall_now_ms();
        let rect = Some(vigil_mask::Rect {
            x: 10,
            y: 20,
            width: 300,
            height: 40,
        });
        let shown = FieldPresence::Shown { rect };
        let age = |ms: f64| age_ns(Some(now_wall - ms));
        assert_eq!(presence_now(shown, age(100.0)), shown);
        for old in [shown, FieldPresence::Hidden] {
            assert_eq!(
                presence_now(old, age(2_000.0)),
                FieldPresence::Shown { rect: None }
            );
        }
        assert_eq!(
            presence_now(FieldPresence::Gone, age(2_000.0)),
            FieldPresence::Gone
        );
    }

    #[test]
    fn a_silent_host_is_reported_down_once_and_up_again_when_it_speaks() {
        let mut link = ExtensionLink::default();
        assert!(
            link.check(100 * S).is_none(),
            "never attached: nothing needed"
        );
        link.on_message(
            &ExtensionMessage::Hello { version: None },
            Some("chromium"),
            S,
        );
        assert!(link.check(5 * S).is_none());
        let down = link.check(8 * S).expect("silent for 7 s");
        assert!(matches!(down, TriggerEvent::Health { healthy: false, .. }));
        assert!(link.check(9 * S).is_none(), "reported once");
        let back = link.on_message(&ExtensionMessage::Heartbeat, None, 10 * S);
        assert!(matches!(
            back[0],
            TriggerEvent::Health { healthy: true, .. }
        ));
        link.on_message(&ExtensionMessage::Bye, None, 11 * S);
        assert!(link.check(100 * S).is_none(), "closed on purpose: no mask");
    }
}
