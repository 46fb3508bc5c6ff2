//! From trigger events to mask commands: the rules decide what a focused field means, focus
//! loss ends its span after the rule's tail, and a watcher that goes down masks the whole
//! screen until it is back and has reported the focus again (fail closed: what has focus after
//! an outage is unknown until then).
//!
//! Audio masking follows focus; screen masking follows the data (brief §5). A matched field
//! that may hold a value is *held* after focus leaves it ([`crate::held`]): its region stays
//! masked for as long as its trigger sees it on screen, the whole screen while its position is
//! unknown, until it is empty or gone with its page. The recorded person can forge the
//! extension's reports (they hold the control secret), so a field the extension holds is also
//! held through the accessibility bus when that saw the same focus: a forged "gone" ends only
//! the extension's hold, never the one the accessibility bus still confirms.

use std::collections::{HashMap, VecDeque};

use crate::held::{padded, FieldKey, HeldFields, HoldRequest};
use crate::rules::{Decision, RuleSet, ScreenAction};
use crate::{FieldInfo, FieldPresence, Rect, TriggerEvent, TriggerSource};

/// An accessibility focus this close to an extension focus is taken as the same field.
const WITNESS_WINDOW_NS: u64 = 1_000_000_000;
/// Accessibility focus changes remembered for binding witnesses.
const WITNESS_HISTORY: usize = 8;

/// What a mask does to the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenMask {
    /// Black out everything.
    Full,
    /// Black out this rectangle (desktop coordinates).
    Region(Rect),
    /// Leave the screen.
    None,
}

/// A change of the mask timeline, or of what the triggers follow.
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
    /// Ask `source` to report [`TriggerEvent::FieldState`] samples of the field `key` (the
    /// accessibility watcher polls the fields it is asked to watch).
    Watch {
        /// Which trigger.
        source: TriggerSource,
        /// The field's key.
        key: String,
    },
    /// Stop following the field `key`.
    Unwatch {
        /// Which trigger.
        source: TriggerSource,
        /// The field's key.
        key: String,
    },
}

/// The page or window a field belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Context {
    app: Option<String>,
    window_title: Option<String>,
    url: Option<String>,
}

impl Context {
    pub(crate) fn of(field: &FieldInfo) -> Self {
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
    pub(crate) fn left_for(&self, now: &Context, same_trigger: bool) -> bool {
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
    /// The field's key in its trigger.
    field_key: Option<String>,
    /// When focus came.
    focused_ns: u64,
    /// The accessibility bus's key for the same field (extension spans).
    witness: Option<String>,
}

/// Turns trigger events into mask commands.
pub struct MaskController {
    rules: RuleSet,
    next_key: u64,
    /// The open focus span of each source.
    focus: HashMap<TriggerSource, FocusSpan>,
    /// Fields whose data can still be on screen.
    held: HeldFields,
    /// Recent accessibility focus changes (key, when), newest last.
    accessibility_focus: VecDeque<(String, u64)>,
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
            held: HeldFields::default(),
            accessibility_focus: VecDeque::new(),
            watchdog: HashMap::new(),
        }
    }

    /// Applies `rules` from the next focus change on (a new policy); spans already open keep
    /// the rule that opened them until the field loses focus.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
    }

    /// The recording's frame interval: a held field's position older than this (plus its
    /// delivery) masks the whole screen.
    pub fn set_frame_interval(&mut self, interval_ns: u64) {
        self.held.set_frame_interval(interval_ns);
    }

    /// How many fields are held (masked while they can be on screen).
    pub fn held_fields(&self) -> usize {
        self.held.len()
    }

    fn key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Time-driven decisions: held fields whose position went stale mask the whole screen.
    pub fn tick(&mut self, now_ns: u64) -> Vec<MaskCommand> {
        let mut out = Vec::new();
        let mut next = self.next_key;
        self.held.tick(
            now_ns,
            &mut || {
                next += 1;
                next
            },
            &mut out,
        );
        self.next_key = next;
        out
    }

    /// Ends a focus span (after its tail unless `at_once`) and holds the field while its data
    /// may still be on screen.
    fn leave_field(
        &mut self,
        source: TriggerSource,
        at_ns: u64,
        at_once: bool,
        has_value: Option<bool>,
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
        if !span.masks_screen || has_value == Some(false) {
            return;
        }
        let request = HoldRequest {
            rule_id: span.rule_id.clone(),
            tail_ns: span.tail_ns,
            context: span.context.clone(),
        };
        let mut next = self.next_key;
        let mut keys = || {
            next += 1;
            next
        };
        match &span.field_key {
            Some(field_key) => {
                let key = (source, field_key.clone());
                self.held.hold(key, request.clone(), at_ns, &mut keys, out);
            }
            None => self
                .held
                .hold_unfollowed(source, request.clone(), at_ns, &mut keys, out),
        }
        if let Some(witness) = span.witness {
            let key = (TriggerSource::Accessibility, witness);
            self.held.hold(key, request, at_ns, &mut keys, out);
        }
        self.next_key = next;
    }

    /// The accessibility focus closest to `at_ns`, within the witness window.
    fn witness_near(&self, at_ns: u64) -> Option<String> {
        self.accessibility_focus
            .iter()
            .filter(|(_, t)| t.abs_diff(at_ns) <= WITNESS_WINDOW_NS)
            .min_by_key(|(_, t)| t.abs_diff(at_ns))
            .map(|(k, _)| k.clone())
    }

    /// Remembers an accessibility focus, and binds it to an extension span that began just
    /// before it without a witness.
    fn note_accessibility_focus(&mut self, key: &str, at_ns: u64) {
        self.accessibility_focus.push_back((key.to_string(), at_ns));
        while self.accessibility_focus.len() > WITNESS_HISTORY {
            self.accessibility_focus.pop_front();
        }
        if let Some(span) = self.focus.get_mut(&TriggerSource::Extension) {
            if span.witness.is_none() && at_ns.abs_diff(span.focused_ns) <= WITNESS_WINDOW_NS {
                span.witness = Some(key.to_string());
            }
        }
    }

    fn focus_gained(
        &mut self,
        at_ns: u64,
        source: TriggerSource,
        field: &FieldInfo,
        out: &mut Vec<MaskCommand>,
    ) {
        // A new focus ends the previous field's span at once (its tail was for leaving the
        // field, not for moving to another masked one, which opens its own span).
        let decision = self.rules.decide(field);
        let context = Context::of(field);
        self.leave_field(source, at_ns, decision.is_some(), None, out);
        self.held.focus_moved(source, &context, at_ns, out);
        if source == TriggerSource::Accessibility {
            if let Some(key) = &field.key {
                self.note_accessibility_focus(key, at_ns);
            }
        }
        let Some(d) = decision else {
            return;
        };
        let key = self.key();
        let screen = focus_screen(&d, field.rect);
        out.push(MaskCommand::Open {
            key,
            start_ns: at_ns,
            screen,
            audio: d.action.audio,
            reason: format!("sensitive field focused ({})", d.rule_id),
            rule_id: Some(d.rule_id.clone()),
            trigger: source,
        });
        let witness = (source == TriggerSource::Extension)
            .then(|| self.witness_near(at_ns))
            .flatten();
        self.focus.insert(
            source,
            FocusSpan {
                key,
                tail_ns: d.action.tail_ms * 1_000_000,
                masks_screen: screen != ScreenMask::None,
                rule_id: d.rule_id,
                context,
                field_key: field.key.clone(),
                focused_ns: at_ns,
                witness,
            },
        );
    }

    /// A sample of a field: moves a held field's mask, or holds a field first seen here (a
    /// form restored by a reload, a card number shown as text) when the rules mask it.
    fn field_state(
        &mut self,
        at_ns: u64,
        source: TriggerSource,
        key: &str,
        presence: FieldPresence,
        field: Option<&FieldInfo>,
        out: &mut Vec<MaskCommand>,
    ) {
        let key: FieldKey = (source, key.to_string());
        let mut next = self.next_key;
        let mut keys = || {
            next += 1;
            next
        };
        if !self.held.is_held(&key) && presence != FieldPresence::Gone {
            let decision = field.and_then(|f| self.rules.decide(f).map(|d| (d, f)));
            if let Some((d, f)) = decision.filter(|(d, _)| d.action.screen != ScreenAction::None) {
                let request = HoldRequest {
                    rule_id: d.rule_id,
                    tail_ns: d.action.tail_ms * 1_000_000,
                    context: Context::of(f),
                };
                self.held.hold(key.clone(), request, at_ns, &mut keys, out);
            }
        }
        self.held.sample(&key, presence, at_ns, &mut keys, out);
        self.next_key = next;
    }

    /// Handles one trigger event.
    pub fn on_event(&mut self, event: &TriggerEvent) -> Vec<MaskCommand> {
        let mut out = Vec::new();
        match event {
            TriggerEvent::FocusGained {
                at_ns,
                source,
                field,
            } => self.focus_gained(*at_ns, *source, field, &mut out),
            TriggerEvent::FocusLost {
                at_ns,
                source,
                has_value,
            } => {
                self.leave_field(*source, *at_ns, false, *has_value, &mut out);
            }
            TriggerEvent::FieldState {
                at_ns,
                source,
                key,
                presence,
                field,
            } => self.field_state(*at_ns, *source, key, *presence, field.as_ref(), &mut out),
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

/// What a focused field's span does to the screen: its rule's action, the whole screen when a
/// region is asked for but the rectangle is unknown.
fn focus_screen(d: &Decision, rect: Option<Rect>) -> ScreenMask {
    match (d.action.screen, rect) {
        (ScreenAction::None, _) => ScreenMask::None,
        (ScreenAction::Region, Some(r)) => padded(r),
        // No rectangle known: mask everything rather than guess.
        (ScreenAction::Region, None) | (ScreenAction::Full, _) => ScreenMask::Full,
    }
}

#[cfg(test)]
mod tests;
