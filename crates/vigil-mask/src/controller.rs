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

use crate::browser::UnwatchedBrowser;
use crate::command::{Context, SpanKeys};
pub use crate::command::{HeldField, MaskCommand};
use crate::held::{padded, FieldKey, HeldFields, HoldRequest};
use crate::rules::{Decision, RuleSet, ScreenAction};
use crate::{FieldInfo, FieldPresence, Rect, ScreenMask, TriggerEvent, TriggerSource};

/// An accessibility focus this close to an extension focus, on the same place of the screen,
/// is taken as the same field.
const WITNESS_WINDOW_NS: u64 = 1_000_000_000;
/// Without rectangles to compare, only a focus this close in time counts (Tab moves focus
/// every few hundred ms when an agent types fast).
const WITNESS_BLIND_WINDOW_NS: u64 = 150_000_000;
/// Two rectangles are the same field when their intersection is this much of their union (a
/// document or frame that contains the field is not the field).
const WITNESS_MIN_OVERLAP: f64 = 0.5;
/// Accessibility focus changes remembered for binding witnesses.
const WITNESS_HISTORY: usize = 8;
/// Field keys remembered as gone (a page that unloads with a field focused reports the field
/// gone before the focus span ends).
const GONE_HISTORY: usize = 256;
/// The longest the screen stays masked for a page change that no page settles (a browser
/// page where the extension does not run, such as a new tab page; a page slow to report
/// under load must not show before it has).
const PAGE_CHANGE_MAX_NS: u64 = 5_000_000_000;

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
    /// The field's rectangle at focus.
    rect: Option<Rect>,
    /// The accessibility bus's key for the same field (extension spans).
    witness: Option<String>,
}

/// Whether two focus reports are of the same field: close in time and, when both rectangles
/// are known, mostly on the same place of the screen.
fn same_field(a: (u64, Option<Rect>), b: (u64, Option<Rect>)) -> bool {
    let dt = a.0.abs_diff(b.0);
    match (a.1, b.1) {
        (Some(x), Some(y)) => dt <= WITNESS_WINDOW_NS && overlap(x, y) >= WITNESS_MIN_OVERLAP,
        _ => dt <= WITNESS_BLIND_WINDOW_NS,
    }
}

/// Intersection over union of two rectangles.
fn overlap(a: Rect, b: Rect) -> f64 {
    let (ax1, ay1) = (a.x as i64 + a.width as i64, a.y as i64 + a.height as i64);
    let (bx1, by1) = (b.x as i64 + b.width as i64, b.y as i64 + b.height as i64);
    let w = (ax1.min(bx1) - (a.x as i64).max(b.x as i64)).max(0);
    let h = (ay1.min(by1) - (a.y as i64).max(b.y as i64)).max(0);
    let area = |r: Rect| r.width as i64 * r.height as i64;
    let union = area(a) + area(b) - w * h;
    if union <= 0 {
        return 0.0;
    }
    (w * h) as f64 / union as f64
}

/// Turns trigger events into mask commands.
pub struct MaskController {
    rules: RuleSet,
    keys: SpanKeys,
    /// The open focus span of each source.
    focus: HashMap<TriggerSource, FocusSpan>,
    /// Fields whose data can still be on screen.
    held: HeldFields,
    /// Recent accessibility focus changes (key, when, where), newest last.
    accessibility_focus: VecDeque<(String, u64, Option<Rect>)>,
    /// The open page-change span (its key, start) and the latest settle seen.
    page_change: Option<(u64, u64)>,
    last_settled_ns: u64,
    /// The open watchdog span of each watcher that went down, and whether it is back (then
    /// the span waits for its first focus report: what has focus now is unknown until then).
    watchdog: HashMap<TriggerSource, (u64, bool)>,
    /// Focus in a browser while the extension that field masking expects is not attached.
    unwatched: UnwatchedBrowser,
    /// Fields their trigger last reported gone, oldest first.
    gone: VecDeque<FieldKey>,
}

impl MaskController {
    /// A controller applying `rules`.
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            keys: SpanKeys::new(),
            focus: HashMap::new(),
            held: HeldFields::default(),
            accessibility_focus: VecDeque::new(),
            page_change: None,
            last_settled_ns: 0,
            watchdog: HashMap::new(),
            unwatched: UnwatchedBrowser::default(),
            gone: VecDeque::new(),
        }
    }

    /// Field masking relies on the browser extension: until it is attached, focus in a
    /// browser masks the whole screen (its pages may show card data nothing else can see).
    pub fn expect_extension(&mut self) {
        self.unwatched.expect_extension();
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

    /// The delay line: how long a held field's position report may take to arrive before the
    /// controller masks the whole screen for want of it.
    pub fn set_delay(&mut self, delay_ns: u64) {
        self.held.set_delay(delay_ns);
        self.unwatched.set_lookback(delay_ns);
    }

    /// How many fields are held (masked while they can be on screen).
    pub fn held_fields(&self) -> usize {
        self.held.len()
    }

    /// The held fields.
    pub fn held(&self) -> Vec<HeldField> {
        self.held.list()
    }

    fn key(&mut self) -> u64 {
        self.keys.next()
    }

    /// Time-driven decisions: held fields whose position went stale mask the whole screen; a
    /// page change that nothing settled ends after [`PAGE_CHANGE_MAX_NS`].
    pub fn tick(&mut self, now_ns: u64) -> Vec<MaskCommand> {
        let mut out = Vec::new();
        if let Some((key, start)) = self.page_change {
            if now_ns > start + PAGE_CHANGE_MAX_NS {
                self.page_change = None;
                out.push(MaskCommand::Close {
                    key,
                    end_ns: start + PAGE_CHANGE_MAX_NS,
                });
            }
        }
        self.held.tick(now_ns, &mut self.keys, &mut out);
        self.unwatched.tick(now_ns, &mut out);
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
        let keys = &mut self.keys;
        match &span.field_key {
            // Its page already said it is gone (unloaded while the field had focus): no
            // report will ever say where it is, and holding it would mask the whole screen
            // for good.
            Some(field_key) if self.gone.contains(&(source, field_key.clone())) => {}
            Some(field_key) => {
                let key = (source, field_key.clone());
                self.held.hold(key, request.clone(), at_ns, keys, out);
            }
            None => self
                .held
                .hold_unfollowed(source, request.clone(), at_ns, keys, out),
        }
        if let Some(witness) = span.witness {
            let key = (TriggerSource::Accessibility, witness);
            self.held.hold(key, request, at_ns, keys, out);
        }
    }

    /// The accessibility focus on the same field as an extension focus at `at_ns` on `rect`.
    fn witness_near(&self, at_ns: u64, rect: Option<Rect>) -> Option<String> {
        self.accessibility_focus
            .iter()
            .filter(|(_, t, r)| same_field((*t, *r), (at_ns, rect)))
            .min_by_key(|(_, t, _)| t.abs_diff(at_ns))
            .map(|(k, _, _)| k.clone())
    }

    /// Remembers an accessibility focus, and binds it to the extension's span of the same
    /// field when the extension reported it first.
    fn note_accessibility_focus(&mut self, key: &str, at_ns: u64, rect: Option<Rect>) {
        self.accessibility_focus
            .push_back((key.to_string(), at_ns, rect));
        while self.accessibility_focus.len() > WITNESS_HISTORY {
            self.accessibility_focus.pop_front();
        }
        if let Some(span) = self.focus.get_mut(&TriggerSource::Extension) {
            if span.witness.is_none() && same_field((span.focused_ns, span.rect), (at_ns, rect)) {
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
                self.note_accessibility_focus(key, at_ns, field.rect);
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
            .then(|| self.witness_near(at_ns, field.rect))
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
                rect: field.rect,
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
        self.gone.retain(|k| *k != key);
        if presence == FieldPresence::Gone {
            self.gone.push_back(key.clone());
            if self.gone.len() > GONE_HISTORY {
                self.gone.pop_front();
            }
        }
        if !self.held.is_held(&key) && presence != FieldPresence::Gone {
            let decision = field.and_then(|f| self.rules.decide(f).map(|d| (d, f)));
            if let Some((d, f)) = decision.filter(|(d, _)| d.action.screen != ScreenAction::None) {
                let request = HoldRequest {
                    rule_id: d.rule_id,
                    tail_ns: d.action.tail_ms * 1_000_000,
                    context: Context::of(f),
                };
                self.held
                    .hold(key.clone(), request, at_ns, &mut self.keys, out);
            }
        }
        tracing::trace!(trigger = key.0.as_str(), field = %key.1, ?presence, at_ns, "field sample");
        self.held.sample(&key, presence, at_ns, &mut self.keys, out);
    }

    /// The page is changing: the whole screen until the next page says what it shows (a
    /// bfcache restore or a tab switch paints before any script can look).
    fn page_leaving(&mut self, at_ns: u64, source: TriggerSource, out: &mut Vec<MaskCommand>) {
        if self.page_change.is_some() || self.last_settled_ns > at_ns {
            // Already masked, or the next page settled first (reports crossed on the way).
            return;
        }
        let key = self.key();
        out.push(MaskCommand::open_full(
            key,
            at_ns,
            "page changing: what the next page shows is not known yet".into(),
            None,
            source,
        ));
        self.page_change = Some((key, at_ns));
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
            TriggerEvent::PageLeaving { at_ns, source } => {
                self.page_leaving(*at_ns, *source, &mut out)
            }
            TriggerEvent::PageSettled { at_ns, .. } => {
                self.last_settled_ns = self.last_settled_ns.max(*at_ns);
                if let Some((key, start)) = self.page_change.take() {
                    out.push(MaskCommand::Close {
                        key,
                        end_ns: (*at_ns).max(start),
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
                    out.push(MaskCommand::open_full(
                        key,
                        *at_ns,
                        format!("{} watcher down: {detail}", source.as_str()),
                        None,
                        TriggerSource::Watchdog,
                    ));
                    self.watchdog.insert(*source, (key, false));
                }
                (healthy, Some((key, _))) => {
                    self.watchdog.insert(*source, (key, *healthy));
                }
                (true, None) => {}
            },
        }
        match event {
            TriggerEvent::Health {
                at_ns,
                source: TriggerSource::Extension,
                healthy,
                ..
            } => self
                .unwatched
                .extension_health(*at_ns, *healthy, &mut self.keys, &mut out),
            TriggerEvent::FocusGained {
                at_ns,
                source: TriggerSource::Accessibility,
                field,
            } => self
                .unwatched
                .focus(*at_ns, field, &mut self.keys, &mut out),
            // Settled: the page's first report (fields, card text) went out before it.
            TriggerEvent::PageSettled {
                at_ns,
                source: TriggerSource::Extension,
            } => self.unwatched.extension_settled(*at_ns, &mut out),
            _ => {}
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
