//! From trigger events to mask commands: the rules decide what a focused field means, focus
//! loss ends a span after the rule's tail, DTMF tones silence both tracks, and a watcher that
//! goes down masks the whole screen until it is back (fail closed).

use std::collections::HashMap;

use crate::rules::{RuleSet, ScreenAction};
use crate::{Rect, TriggerEvent, TriggerSource};

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

/// Turns trigger events into mask commands.
pub struct MaskController {
    rules: RuleSet,
    next_key: u64,
    /// The open focus span of each source, and its tail.
    focus: HashMap<TriggerSource, (u64, u64)>,
    /// The open watchdog span of each unhealthy watcher.
    watchdog: HashMap<TriggerSource, u64>,
}

impl MaskController {
    /// A controller applying `rules`.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            next_key: 1,
            focus: HashMap::new(),
            watchdog: HashMap::new(),
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
                if let Some((key, tail)) = self.focus.remove(source) {
                    let end = if decision.is_some() {
                        *at_ns
                    } else {
                        at_ns + tail
                    };
                    out.push(MaskCommand::Close { key, end_ns: end });
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
                        rule_id: Some(d.rule_id),
                        trigger: *source,
                    });
                    self.focus
                        .insert(*source, (key, d.action.tail_ms * 1_000_000));
                }
            }
            TriggerEvent::FocusLost { at_ns, source } => {
                if let Some((key, tail)) = self.focus.remove(source) {
                    out.push(MaskCommand::Close {
                        key,
                        end_ns: at_ns + tail,
                    });
                }
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
                    self.watchdog.insert(*source, key);
                }
                (true, Some(key)) => {
                    self.watchdog.remove(source);
                    out.push(MaskCommand::Close {
                        key,
                        end_ns: *at_ns,
                    });
                }
                _ => {}
            },
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
            close,
            vec![MaskCommand::Close {
                key,
                end_ns: 5_000 + 2_000_000_000
            }]
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
        assert!(matches!(up[0], MaskCommand::Close { end_ns: 20, .. }));
    }
}
