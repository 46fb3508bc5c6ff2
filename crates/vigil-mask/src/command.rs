//! What the controller decides, as data: mask commands (what they do to the screen is
//! `vigil_proto::ScreenMask`), the page or window a field belongs to, and the held fields the
//! status shows. Shared by the controller and the held fields below it, so that neither imports
//! the other.

use vigil_proto::ScreenMask;

use crate::{FieldInfo, TriggerSource};

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

impl MaskCommand {
    /// A span masking the whole screen (voice kept) from `start_ns`.
    pub(crate) fn open_full(
        key: u64,
        start_ns: u64,
        reason: String,
        rule_id: Option<String>,
        trigger: TriggerSource,
    ) -> Self {
        MaskCommand::Open {
            key,
            start_ns,
            screen: ScreenMask::Full,
            audio: false,
            reason,
            rule_id,
            trigger,
        }
    }
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

/// A field held after focus left it, as the status shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldField {
    /// Who follows it.
    pub trigger: TriggerSource,
    /// Its key there.
    pub key: String,
    /// The rule that matched it.
    pub rule_id: String,
    /// What is masked for it now ([`ScreenMask::None`] while it is hidden).
    pub screen: ScreenMask,
}

/// Hands out the keys of mask spans, one counter for the controller and its held fields.
#[derive(Debug)]
pub(crate) struct SpanKeys(u64);

impl SpanKeys {
    pub(crate) fn new() -> Self {
        Self(1)
    }

    /// A key not given before.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}
