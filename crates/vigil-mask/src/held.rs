//! Fields whose data stays on screen after focus leaves them (brief §5: card data is masked for
//! as long as it can be seen). A held field keeps a screen mask of its own: its rectangle (with
//! a margin) while a trigger confirms where it is, the whole screen while its position is
//! unknown or older than the staleness limit, nothing while it is hidden, and it ends a tail
//! after the field is empty or gone with its page.
//!
//! Triggers that can follow a field (the browser extension, AT-SPI) report
//! [`FieldPresence`] samples under the field's key. A trigger that cannot (no key) gets the
//! safe fallback: the whole screen stays masked until focus lands in another page or window.

use std::collections::HashMap;

use crate::command::{Context, HeldField, MaskCommand, SpanKeys};
use crate::{FieldPresence, Rect, ScreenMask, TriggerSource};

/// Padding around a field's rectangle for region masks, in pixels.
pub(crate) const REGION_PADDING: i32 = 12;
/// How long the whole screen stays masked after a field's last reported move: the screen shows
/// a page some frames after the page lays it out, and a smooth scroll passes through positions
/// between two reports. 300 ms was too short on a loaded machine: on Bootstrap's checkout
/// example, with both cores busy, the screen still showed the card fields where they were
/// before a scroll ended after their new places had been masked alone.
pub(crate) const MOVE_SETTLE_NS: u64 = 1_000_000_000;
/// How far before a report of a field coming into view the screen is masked whole.
const SHOW_LEAD_NS: u64 = 100_000_000;
/// How long the screen stays masked after focus lands in another page or window, or after a
/// field's page is gone: the old page can stay on screen until the new one first paints.
pub(crate) const PAGE_SETTLE_NS: u64 = 700_000_000;
/// How long a field stays masked after it is reported hidden: a tab switch repaints within a
/// frame or two on an idle machine, but the screen lags the page as much as after a move under
/// load.
const HIDE_SETTLE_NS: u64 = MOVE_SETTLE_NS;
/// Added to the frame interval before two position reports are too far apart: the jitter of
/// the page's 100-ms report timer.
const REPORT_JITTER_NS: u64 = 100_000_000;
/// Staleness limit until the engine says its frame interval (5 frames a second).
const DEFAULT_FRAME_INTERVAL_NS: u64 = 200_000_000;
/// How long the controller waits for a report before it must decide without one: the delay
/// line (600 ms by default) less what the engine needs to act before media leaves it.
const DEFAULT_WAIT_NS: u64 = 450_000_000;
/// What the engine needs between a decision and the delay line's release.
const DECISION_MARGIN_NS: u64 = 150_000_000;

/// The key of a held field: who follows it and its identity there.
pub(crate) type FieldKey = (TriggerSource, String);

/// One held field.
#[derive(Debug)]
struct Held {
    rule_id: String,
    /// Whose samples move it (its trigger) and its tail after it is gone.
    tail_ns: u64,
    /// The span in force and what it masks.
    span: Option<(u64, ScreenMask)>,
    /// When its position was last confirmed.
    seen_ns: u64,
    /// Whether its trigger reports samples; otherwise it is held until another page.
    followed: bool,
    /// The whole-screen span of a move in progress, and when the field last moved.
    moving: Option<(u64, u64)>,
    /// Its page or window (for the fallback).
    context: Context,
}

impl Held {
    /// A field held from `at_ns`, masking the whole screen until its position is known.
    fn start(
        request: HoldRequest,
        followed: bool,
        trigger: TriggerSource,
        at_ns: u64,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) -> Self {
        let mut field = Held {
            rule_id: request.rule_id,
            tail_ns: request.tail_ns,
            span: None,
            seen_ns: at_ns,
            followed,
            moving: None,
            context: request.context,
        };
        open(&mut field, trigger, ScreenMask::Full, at_ns, keys, out);
        field
    }
}

/// What to hold: a field that left focus, or one first reported by a sample.
#[derive(Debug, Clone)]
pub(crate) struct HoldRequest {
    pub(crate) rule_id: String,
    pub(crate) tail_ns: u64,
    pub(crate) context: Context,
}

/// The held fields of a session.
#[derive(Debug)]
pub(crate) struct HeldFields {
    fields: HashMap<FieldKey, Held>,
    /// Report stamps further apart than this leave the field's position unknown in between.
    stale_ns: u64,
    /// How long after a position's stamp a newer one may still come before the media of that
    /// time leaves the delay line.
    wait_ns: u64,
    next_fallback: u64,
}

impl Default for HeldFields {
    fn default() -> Self {
        Self {
            fields: HashMap::new(),
            stale_ns: DEFAULT_FRAME_INTERVAL_NS + REPORT_JITTER_NS,
            wait_ns: DEFAULT_WAIT_NS,
            next_fallback: 0,
        }
    }
}

/// A field's rectangle with the region margin.
pub(crate) fn padded(r: Rect) -> ScreenMask {
    ScreenMask::Region(Rect {
        x: r.x.saturating_sub(REGION_PADDING),
        y: r.y.saturating_sub(REGION_PADDING),
        width: r.width.saturating_add(2 * REGION_PADDING as u32),
        height: r.height.saturating_add(2 * REGION_PADDING as u32),
    })
}

impl HeldFields {
    /// Positions older than one frame interval (plus the report timer's jitter) at a frame's
    /// capture time mask the whole screen.
    pub(crate) fn set_frame_interval(&mut self, interval_ns: u64) {
        self.stale_ns = interval_ns.max(1) + REPORT_JITTER_NS;
    }

    /// The delay line: how long reports may take to arrive before a decision is due.
    pub(crate) fn set_delay(&mut self, delay_ns: u64) {
        self.wait_ns = delay_ns
            .saturating_sub(DECISION_MARGIN_NS)
            .max(self.stale_ns);
    }

    pub(crate) fn is_held(&self, key: &FieldKey) -> bool {
        self.fields.contains_key(key)
    }

    /// How many fields are held (for status).
    pub(crate) fn len(&self) -> usize {
        self.fields.len()
    }

    /// Every held field: who follows it, its key, its rule and what is masked for it now.
    pub(crate) fn list(&self) -> Vec<HeldField> {
        let mut out: Vec<HeldField> = self
            .fields
            .iter()
            .map(|((trigger, key), f)| HeldField {
                trigger: *trigger,
                key: key.clone(),
                rule_id: f.rule_id.clone(),
                screen: f.span.map_or(ScreenMask::None, |(_, screen)| screen),
            })
            .collect();
        out.sort_by(|a, b| (a.trigger.as_str(), &a.key).cmp(&(b.trigger.as_str(), &b.key)));
        out
    }

    /// Holds a followed field from `at_ns`: the whole screen until its first sample.
    pub(crate) fn hold(
        &mut self,
        key: FieldKey,
        request: HoldRequest,
        at_ns: u64,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        if self.fields.contains_key(&key) {
            return;
        }
        if key.0 == TriggerSource::Accessibility {
            out.push(MaskCommand::Watch {
                source: key.0,
                key: key.1.clone(),
            });
        }
        let field = Held::start(request, true, key.0, at_ns, keys, out);
        self.fields.insert(key, field);
    }

    /// Holds a field its trigger cannot follow: the whole screen until another page.
    pub(crate) fn hold_unfollowed(
        &mut self,
        source: TriggerSource,
        request: HoldRequest,
        at_ns: u64,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        // One such mask per trigger is enough: it covers the whole screen.
        if self
            .fields
            .iter()
            .any(|((s, _), f)| *s == source && !f.followed)
        {
            return;
        }
        self.next_fallback += 1;
        let field = Held::start(request, false, source, at_ns, keys, out);
        let key = (source, format!("unfollowed-{}", self.next_fallback));
        self.fields.insert(key, field);
    }

    /// Applies a sample of a held field.
    pub(crate) fn sample(
        &mut self,
        key: &FieldKey,
        presence: FieldPresence,
        at_ns: u64,
        keys: &mut SpanKeys,
        out: &mut Vec<MaskCommand>,
    ) {
        let stale_ns = self.stale_ns;
        let Some(field) = self.fields.get_mut(key) else {
            return;
        };
        // A sample older than the last one says nothing new about the position.
        let at_ns = at_ns.max(field.seen_ns);
        match presence {
            FieldPresence::Shown { rect } => {
                let want = rect.map_or(ScreenMask::Full, padded);
                let gap = at_ns.saturating_sub(field.seen_ns) > stale_ns;
                if gap && matches!(field.span, Some((_, ScreenMask::Region(_)))) {
                    // The reports came, but too far apart: where the field was in between
                    // is unknown, so those frames are masked whole.
                    let key_full = keys.next();
                    out.push(MaskCommand::open_full(
                        key_full,
                        field.seen_ns + stale_ns,
                        reason(ScreenMask::Full, &field.rule_id),
                        Some(field.rule_id.clone()),
                        key.0,
                    ));
                    out.push(MaskCommand::Close {
                        key: key_full,
                        end_ns: at_ns,
                    });
                }
                match field.span {
                    Some((_, current)) if current == want => {}
                    Some((span_key, current)) => {
                        // It moved (a scroll, a layout change) or came into view: the screen
                        // shows the page a few frames after the page reports it, so the whole
                        // screen is masked from the last confirmation until the move has
                        // surely been painted, then its new region.
                        let from = if current == ScreenMask::Full {
                            at_ns
                        } else {
                            field.seen_ns
                        };
                        sweep(field, key.0, from, at_ns, keys, out);
                        out.push(MaskCommand::Close {
                            key: span_key,
                            end_ns: at_ns + MOVE_SETTLE_NS,
                        });
                        open(field, key.0, want, at_ns, keys, out);
                    }
                    None => {
                        sweep(
                            field,
                            key.0,
                            at_ns.saturating_sub(SHOW_LEAD_NS),
                            at_ns,
                            keys,
                            out,
                        );
                        open(field, key.0, want, at_ns, keys, out);
                    }
                }
                field.seen_ns = at_ns;
            }
            FieldPresence::Hidden => {
                if let Some((span_key, _)) = field.span.take() {
                    out.push(MaskCommand::Close {
                        key: span_key,
                        end_ns: at_ns + HIDE_SETTLE_NS,
                    });
                }
                field.seen_ns = at_ns;
            }
            FieldPresence::Gone => {
                let tail = field.tail_ns.max(PAGE_SETTLE_NS);
                self.release(key, at_ns + tail, out);
            }
        }
    }

    fn release(&mut self, key: &FieldKey, end_ns: u64, out: &mut Vec<MaskCommand>) {
        let Some(field) = self.fields.remove(key) else {
            return;
        };
        if let Some((sweep_key, moved_ns)) = field.moving {
            out.push(MaskCommand::Close {
                key: sweep_key,
                end_ns: (moved_ns + MOVE_SETTLE_NS).min(end_ns),
            });
        }
        if let Some((span_key, _)) = field.span {
            out.push(MaskCommand::Close {
                key: span_key,
                end_ns,
            });
        }
        if key.0 == TriggerSource::Accessibility && field.followed {
            out.push(MaskCommand::Unwatch {
                source: key.0,
                key: key.1.clone(),
            });
        }
    }

    /// Focus landed in `now` (seen by `source`): unfollowed fields of another page or window
    /// are off the screen once it has painted.
    pub(crate) fn focus_moved(
        &mut self,
        source: TriggerSource,
        now: &Context,
        at_ns: u64,
        out: &mut Vec<MaskCommand>,
    ) {
        let gone: Vec<FieldKey> = self
            .fields
            .iter()
            .filter(|(k, f)| !f.followed && f.context.left_for(now, k.0 == source))
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.release(&key, at_ns + PAGE_SETTLE_NS, out);
        }
    }

    /// A followed field whose position no report confirmed after a frame interval, while the
    /// media of that time is about to leave the delay line, masks the whole screen from then
    /// until a report comes.
    pub(crate) fn tick(&mut self, now_ns: u64, keys: &mut SpanKeys, out: &mut Vec<MaskCommand>) {
        for ((source, _), field) in self.fields.iter_mut() {
            if let Some((sweep_key, moved_ns)) = field.moving {
                if now_ns >= moved_ns + MOVE_SETTLE_NS {
                    field.moving = None;
                    out.push(MaskCommand::Close {
                        key: sweep_key,
                        end_ns: moved_ns + MOVE_SETTLE_NS,
                    });
                }
            }
            let Some((span_key, ScreenMask::Region(_))) = field.span else {
                continue;
            };
            if !field.followed || now_ns <= field.seen_ns + self.stale_ns + self.wait_ns {
                continue;
            }
            let from = field.seen_ns + self.stale_ns;
            out.push(MaskCommand::Close {
                key: span_key,
                end_ns: from,
            });
            open(field, *source, ScreenMask::Full, from, keys, out);
        }
    }
}

/// Masks the whole screen from `from_ns` while the field moves; one span for a whole run of
/// moves, which the tick ends [`MOVE_SETTLE_NS`] after the last.
fn sweep(
    field: &mut Held,
    trigger: TriggerSource,
    from_ns: u64,
    at_ns: u64,
    keys: &mut SpanKeys,
    out: &mut Vec<MaskCommand>,
) {
    if let Some((sweep_key, _)) = field.moving {
        field.moving = Some((sweep_key, at_ns));
        return;
    }
    let key = keys.next();
    out.push(MaskCommand::open_full(
        key,
        from_ns,
        format!("card data moving on screen ({})", field.rule_id),
        Some(field.rule_id.clone()),
        trigger,
    ));
    field.moving = Some((key, at_ns));
}

/// Why a held field masks what it masks.
fn reason(screen: ScreenMask, rule_id: &str) -> String {
    match screen {
        ScreenMask::Full => format!("card data may be on screen, position unknown ({rule_id})"),
        _ => format!("card data on screen ({rule_id})"),
    }
}

fn open(
    field: &mut Held,
    trigger: TriggerSource,
    screen: ScreenMask,
    start_ns: u64,
    keys: &mut SpanKeys,
    out: &mut Vec<MaskCommand>,
) {
    let key = keys.next();
    let reason = reason(screen, &field.rule_id);
    out.push(MaskCommand::Open {
        key,
        start_ns,
        screen,
        audio: false,
        reason,
        rule_id: Some(field.rule_id.clone()),
        trigger,
    });
    field.span = Some((key, screen));
}
