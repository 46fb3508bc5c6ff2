//! From trigger events to mask commands: the rules decide what a focused field means, focus
//! loss ends a span after the rule's tail, DTMF tones silence both tracks, and a watcher that
//! goes down masks the whole screen until it is back and has reported the focus again (fail
//! closed: what has focus after an outage is unknown until then).
//!
//! A card number stays on screen after focus leaves its field, and a region mask cannot follow
//! it when the page scrolls. The safe choice made here: after a field that masked the screen
//! loses focus, the voice tracks come back after the rule's tail, but the whole screen stays
//! masked until focus lands in another page or window (a different URL, window title or
//! application), and 700 ms more while the new page paints. Focus that comes without any of
//! those keeps the mask.

use std::collections::HashMap;

use crate::rules::{RuleSet, ScreenAction};
use crate::{Rect, TriggerEvent, TriggerSource};

/// How long the screen stays masked after focus lands in another page or window: the old page
/// can stay on screen until the new one first paints.
const PAGE_SETTLE_NS: u64 = 700_000_000;

/// Padding around a field's rectangle for region masks, in pixels.
const REGION_PADDING: i32 = 12;

/// What a mask does to the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenMask {
    /// Black out everything.
    Full,
    /// Black out this rectangle.
    Region(Rect),
    /// Leave the screen.
    None,
}

/// A change of the mask timeline.
#[derive(Debug, Clone, PartialEq)]
pub enum MaskCommand {
    /// Start a span (open until closed).
    Open {
        /// The controller's key for the span.
        key: u64,
        /// Start on the session clock.
        start_ns: u64,
        /// Screen action.
        screen: ScreenMask,
        /// Silence both voice tracks.
        audio: bool,
        /// Why, for the manifest and the status.
        reason: String,
        /// The rule that matched.
        rule_id: Option<String>,
        /// The trigger.
        trigger: TriggerSource,
    },
    /// End a span.
    Close {
        /// The span's key.
        key: u64,
        /// End on the session clock.
        end_ns: u64,
    },
}

/// The page or window a field belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Context {
    app: Option<String>,
    window_title: Option<String>,
    url: Option<String>,
}

impl Context {
    fn of(field: &crate::FieldInfo) -> Self {
        Self {
            app: field.app.clone(),
            window_title: field.window_title.clone(),
            url: field.url.clone(),
        }
    }

    fn is_known(&self) -> bool {
        self.app.is_some() || self.window_title.is_some() || self.url.is_some()
    }

    /// Whether focus in `now` means this page or window is no longer what the screen shows.
    /// Within one trigger every known detail counts; across triggers (the accessibility tree
    /// and the browser extension name windows differently) only two known page URLs, compared
    /// without their fragment.
    fn left_for(&self, now: &Context, same_trigger: bool) -> bool {
        if same_trigger {
            return now.is_known() && self != now;
        }
        let page = |c: &Context| {
            c.url
                .as_deref()
                .map(|u| u.split('#').next().unwrap_or(u).to_string())
        };
        matches!((page(self), page(now)), (Some(a), Some(b)) if a != b)
    }
}

/// An open focus span.
#[derive(Debug, Clone)]
struct FocusSpan {
    key: u64,
    tail_ns: u64,
    masks_screen: bool,
    rule_id: String,
    context: Context,
}

/// Turns trigger events into mask commands.
pub struct MaskController {
    rules: RuleSet,
    next_key: u64,
    /// The open focus span of each source.
    focus: HashMap<TriggerSource, FocusSpan>,
    /// The screen mask kept after a masked field lost focus, per source, and its page.
    sticky: HashMap<TriggerSource, (u64, Context)>,
    /// The open watchdog span of each watcher that went down, and whether it is back (then
    /// the span waits for its first focus report: what has focus now is unknown until then).
    watchdog: HashMap<TriggerSource, (u64, bool)>,
}

impl MaskController {
    /// A controller applying `rules`.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            next_key: 1,
            focus: HashMap::new(),
            sticky: HashMap::new(),
            watchdog: HashMap::new(),
        }
    }

    /// Applies `rules` from the next focus change on (a new policy); spans already open keep
    /// the rule that opened them until the field loses focus.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
    }

    /// Ends a focus span (after its tail unless `at_once`) and keeps the screen masked while
    /// the field's page is still shown.
    fn leave_field(
        &mut self,
        source: TriggerSource,
        at_ns: u64,
        at_once: bool,
        out: &mut Vec<MaskCommand>,
    ) {
        let Some(span) = self.focus.remove(&source) else {
            return;
        };
        let end_ns = if at_once { at_ns } else { at_ns + span.tail_ns };
        out.push(MaskCommand::Close {
            key: span.key,
            end_ns,
        });
        if span.masks_screen && !self.sticky.contains_key(&source) {
            let key = self.key();
            out.push(MaskCommand::Open {
                key,
                start_ns: at_ns,
                screen: ScreenMask::Full,
                audio: false,
                reason: format!("sensitive data may still be on screen ({})", span.rule_id),
                rule_id: Some(span.rule_id),
                trigger: source,
            });
            self.sticky.insert(source, (key, span.context));
        }
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Handles one trigger event.
    pub fn on_event(&mut self, event: &TriggerEvent) -> Vec<MaskCommand> {
        let mut out = Vec::new();
        match event {
            TriggerEvent::FocusGained {
                at_ns,
                source,
                field,
            } => {
                // A new focus ends the previous field's span at once (its tail was for leaving
                // the field, not for moving to another masked one, which opens its own span).
                let decision = self.rules.decide(field);
                let context = Context::of(field);
                self.leave_field(*source, *at_ns, decision.is_some(), &mut out);
                // Another page or window: what the field showed is gone from the screen.
                let gone: Vec<TriggerSource> = self
                    .sticky
                    .iter()
                    .filter(|(kept_by, (_, shown))| shown.left_for(&context, **kept_by == *source))
                    .map(|(kept_by, _)| *kept_by)
                    .collect();
                for kept_by in gone {
                    if let Some((key, _)) = self.sticky.remove(&kept_by) {
                        out.push(MaskCommand::Close {
                            key,
                            end_ns: at_ns + PAGE_SETTLE_NS,
                        });
                    }
                }
                if let Some(d) = decision {
                    let key = self.key();
                    let screen = match (d.action.screen, field.rect) {
                        (ScreenAction::None, _) => ScreenMask::None,
                        (ScreenAction::Region, Some(r)) => ScreenMask::Region(Rect {
                            x: r.x - REGION_PADDING,
                            y: r.y - REGION_PADDING,
                            width: r.width + 2 * REGION_PADDING as u32,
                            height: r.height + 2 * REGION_PADDING as u32,
                        }),
                        // No rectangle known: mask everything rather than guess.
                        (ScreenAction::Region, None) | (ScreenAction::Full, _) => ScreenMask::Full,
                    };
                    out.push(MaskCommand::Open {
                        key,
                        start_ns: *at_ns,
                        screen,
                        audio: d.action.audio,
                        reason: format!("sensitive field focused ({})", d.rule_id),
                        rule_id: Some(d.rule_id.clone()),
                        trigger: *source,
                    });
                    self.focus.insert(
                        *source,
                        FocusSpan {
                            key,
                            tail_ns: d.action.tail_ms * 1_000_000,
                            masks_screen: screen != ScreenMask::None,
                            rule_id: d.rule_id,
                            context,
                        },
                    );
                }
            }
            TriggerEvent::FocusLost { at_ns, source } => {
                self.leave_field(*source, *at_ns, false, &mut out);
            }
            TriggerEvent::Health {
                at_ns,
                source,
                healthy,
                detail,
            } => match (healthy, self.watchdog.get(source).copied()) {
                (false, None) => {
                    let key = self.key();
                    out.push(MaskCommand::Open {
                        key,
                        start_ns: *at_ns,
                        screen: ScreenMask::Full,
                        audio: false,
                        reason: format!("{} watcher down: {detail}", source.as_str()),
                        rule_id: None,
                        trigger: TriggerSource::Watchdog,
                    });
                    self.watchdog.insert(*source, (key, false));
                }
                (healthy, Some((key, _))) => {
                    self.watchdog.insert(*source, (key, *healthy));
                }
                (true, None) => {}
            },
        }
        // A watcher that came back lifts its mask with its first focus report.
        if let TriggerEvent::FocusGained { at_ns, source, .. } = event {
            if let Some((key, true)) = self.watchdog.get(source).copied() {
                self.watchdog.remove(source);
                out.push(MaskCommand::Close {
                    key,
                    end_ns: *at_ns,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FieldInfo;

    fn card() -> FieldInfo {
        FieldInfo {
            name: Some("Card number".into()),
            ..FieldInfo::default()
        }
    }

    #[test]
    fn focus_opens_at_the_event_and_blur_closes_after_the_tail() {
        let mut c = MaskController::new(RuleSet::defaults());
        let src = TriggerSource::Accessibility;
        let open = c.on_event(&TriggerEvent::FocusGained {
            at_ns: 1_000,
            source: src,
            field: card(),
        });
        let MaskCommand::Open {
            key,
            start_ns,
            screen,
            audio,
            ..
        } = open[0].clone()
        else {
            panic!()
        };
        assert_eq!((start_ns, screen, audio), (1_000, ScreenMask::Full, true));
        let close = c.on_event(&TriggerEvent::FocusLost {
            at_ns: 5_000,
            source: src,
        });
        assert_eq!(
            close[0],
            MaskCommand::Close {
                key,
                end_ns: 5_000 + 2_000_000_000
            }
        );
        // The typed number is still on screen: the screen (only) stays masked from the blur.
        assert!(matches!(
            close[1],
            MaskCommand::Open {
                start_ns: 5_000,
                screen: ScreenMask::Full,
                audio: false,
                ..
            }
        ));
    }

    #[test]
    fn the_screen_stays_masked_until_another_page_has_focus() {
        let mut c = MaskController::new(RuleSet::defaults());
        let src = TriggerSource::Accessibility;
        let on_page = |name: &str, url: &str| FieldInfo {
            name: Some(name.into()),
            url: Some(url.into()),
            ..FieldInfo::default()
        };
        let checkout = "https://shop.example/checkout";
        c.on_event(&TriggerEvent::FocusGained {
            at_ns: 1_000,
            source: src,
            field: on_page("Card number", checkout),
        });
        // Moving to the page's Pay button: the field's span ends at once, the screen stays.
        let moved = c.on_event(&TriggerEvent::FocusGained {
            at_ns: 2_000,
            source: src,
            field: on_page("Pay", checkout),
        });
        let MaskCommand::Open { key: sticky, .. } = moved[1].clone() else {
            panic!("{moved:?}")
        };
        assert_eq!(moved.len(), 2, "{moved:?}");
        // Focus without a known page or window keeps it; another card field keeps it too.
        assert!(c
            .on_event(&TriggerEvent::FocusGained {
                at_ns: 3_000,
                source: src,
                field: FieldInfo::default(),
            })
            .is_empty());
        // The confirmation page: the card number is gone from the screen.
        let next = c.on_event(&TriggerEvent::FocusGained {
            at_ns: 4_000,
            source: src,
            field: on_page("Order confirmed", "https://shop.example/done"),
        });
        assert_eq!(
            next,
            vec![MaskCommand::Close {
                key: sticky,
                end_ns: 4_000 + PAGE_SETTLE_NS
            }]
        );
    }

    #[test]
    fn new_rules_apply_from_the_next_focus() {
        let mut c = MaskController::new(RuleSet::defaults());
        let src = TriggerSource::Accessibility;
        let notes = || FieldInfo {
            app: Some("crm-desk".into()),
            name: Some("Notes".into()),
            ..FieldInfo::default()
        };
        let focus = |c: &mut MaskController, at_ns| {
            c.on_event(&TriggerEvent::FocusGained {
                at_ns,
                source: src,
                field: notes(),
            })
        };
        assert!(focus(&mut c, 1_000).is_empty(), "not a payment field");
        let site: Vec<crate::Rule> = serde_json::from_str(
            r#"[{"id": "site.crm", "all": {"app": ["crm-desk"]},
                 "action": {"screen": "full", "audio": false, "tail_ms": 0}}]"#,
        )
        .unwrap();
        c.set_rules(RuleSet::with_site_rules(site).unwrap());
        c.on_event(&TriggerEvent::FocusLost {
            at_ns: 2_000,
            source: src,
        });
        let opened = focus(&mut c, 3_000);
        assert!(
            matches!(
                &opened[..],
                [MaskCommand::Open {
                    screen: ScreenMask::Full,
                    audio: false,
                    ..
                }]
            ),
            "{opened:?}"
        );
    }

    #[test]
    fn an_unmatched_field_opens_nothing_and_a_dead_watcher_masks_until_back() {
        let mut c = MaskController::new(RuleSet::defaults());
        let src = TriggerSource::Accessibility;
        let name = FieldInfo {
            name: Some("Name".into()),
            ..FieldInfo::default()
        };
        assert!(c
            .on_event(&TriggerEvent::FocusGained {
                at_ns: 1,
                source: src,
                field: name
            })
            .is_empty());
        let down = TriggerEvent::Health {
            at_ns: 10,
            source: src,
            healthy: false,
            detail: "bus gone".into(),
        };
        let open = c.on_event(&down);
        assert!(matches!(
            open[0],
            MaskCommand::Open {
                screen: ScreenMask::Full,
                ..
            }
        ));
        assert!(c.on_event(&down).is_empty(), "one span per outage");
        let up = c.on_event(&TriggerEvent::Health {
            at_ns: 20,
            source: src,
            healthy: true,
            detail: String::new(),
        });
        assert!(up.is_empty(), "back, but the focus is not known yet");
        let focus = c.on_event(&TriggerEvent::FocusGained {
            at_ns: 30,
            source: src,
            field: FieldInfo {
                name: Some("Name".into()),
                ..FieldInfo::default()
            },
        });
        assert_eq!(focus.len(), 1, "{focus:?}");
        assert!(matches!(focus[0], MaskCommand::Close { end_ns: 30, .. }));
    }

    #[test]
    fn another_trigger_releases_the_screen_only_for_another_page() {
        let mut c = MaskController::new(RuleSet::defaults());
        let checkout = "https://shop.example/checkout";
        c.on_event(&TriggerEvent::FocusGained {
            at_ns: 1_000,
            source: TriggerSource::Accessibility,
            field: FieldInfo {
                name: Some("Card number".into()),
                url: Some(checkout.into()),
                window_title: Some("Checkout - Chromium".into()),
                ..FieldInfo::default()
            },
        });
        c.on_event(&TriggerEvent::FocusLost {
            at_ns: 2_000,
            source: TriggerSource::Accessibility,
        });
        let page = |url: &str| TriggerEvent::FocusGained {
            at_ns: 3_000,
            source: TriggerSource::Extension,
            field: FieldInfo {
                url: Some(url.into()),
                window_title: Some("Checkout".into()),
                ..FieldInfo::default()
            },
        };
        assert!(
            c.on_event(&page(&format!("{checkout}#summary"))).is_empty(),
            "the same page, seen by the extension"
        );
        let next = c.on_event(&page("https://shop.example/done"));
        assert!(matches!(next[..], [MaskCommand::Close { .. }]), "{next:?}");
    }
}
