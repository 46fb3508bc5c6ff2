//! What triggers report: focus on a field (with everything known about it), API and pause
//! requests, DTMF tones, and the health of each watcher. Every event carries its time on the
//! session clock ([`vigil_capture::Clock`]), taken as close to the OS event as possible: the mask
//! applies from that instant, retroactively through the delay line.

use serde::{Deserialize, Serialize};
use vigil_proto::Rect;

/// Everything a trigger knows about the focused field. Text values are never included: only
/// what identifies the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldInfo {
    /// Application (process or accessible application name), e.g. `chromium`, `gtk-app`.
    pub app: Option<String>,
    /// Title of the top-level window.
    pub window_title: Option<String>,
    /// URL of the page, for browser content.
    pub url: Option<String>,
    /// Accessible name (the label as read by a screen reader).
    pub name: Option<String>,
    /// Accessible role, lower case (`entry`, `password text`, `text`).
    pub role: Option<String>,
    /// Element id (`id` attribute, or automation id).
    pub id: Option<String>,
    /// HTML `name` attribute.
    pub html_name: Option<String>,
    /// HTML input type (`text`, `tel`, `password`).
    pub input_type: Option<String>,
    /// HTML `autocomplete` tokens (`cc-number`, …); only the browser extension sees these.
    pub autocomplete: Vec<String>,
    /// The field's rectangle on screen, when known.
    pub rect: Option<Rect>,
    /// True when the OS says this is a password field (always masked).
    pub password: bool,
    /// True when the field holds text (known from its length; the text is never read). A
    /// matched field that holds a value keeps the screen masked after it loses focus.
    #[serde(default)]
    pub has_value: bool,
    /// The field's identity within its trigger (AT-SPI: bus name and object path; extension:
    /// frame and field), so that later [`TriggerEvent::FieldState`] reports name it. `None`
    /// when the trigger cannot follow the field after focus leaves it.
    #[serde(default)]
    pub key: Option<String>,
}

/// Where a field that may hold card data is now, as its trigger sampled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FieldPresence {
    /// It holds a value and some of it can be on screen, at `rect` when known.
    Shown {
        /// Its rectangle in desktop coordinates; `None` when the trigger cannot tell.
        rect: Option<Rect>,
    },
    /// It holds a value but cannot be seen now (a tab in the background, scrolled out of
    /// view, hidden by the page).
    Hidden,
    /// It is empty, or gone with its page (navigated away, tab closed, removed).
    Gone,
}

/// Which trigger produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerSource {
    /// OS accessibility (AT-SPI, UI Automation, AX).
    Accessibility,
    /// The browser extension via native messaging.
    Extension,
    /// The local control API (CTI, CRM).
    Api,
    /// DTMF tones in a voice track.
    Dtmf,
    /// The agent's manual pause.
    Pause,
    /// The watchdog: a watcher the rules need is down.
    Watchdog,
}

impl TriggerSource {
    /// Name used in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Accessibility => "accessibility",
            TriggerSource::Extension => "extension",
            TriggerSource::Api => "api",
            TriggerSource::Dtmf => "dtmf",
            TriggerSource::Pause => "pause",
            TriggerSource::Watchdog => "watchdog",
        }
    }
}

/// An event from a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerEvent {
    /// A field gained focus.
    FocusGained {
        /// When, on the session clock.
        at_ns: u64,
        /// Who saw it.
        source: TriggerSource,
        /// The field.
        field: FieldInfo,
    },
    /// The focused field (of this source) lost focus.
    FocusLost {
        /// When.
        at_ns: u64,
        /// Who saw it.
        source: TriggerSource,
        /// Whether the field holds a value, when the trigger knows (`None`: unknown, which
        /// counts as holding one).
        has_value: Option<bool>,
    },
    /// A sample of where a field is: sent while a field that may show card data is followed
    /// (the extension for every candidate field and card number shown as text in a page; the
    /// accessibility watcher for the fields the controller asked it to watch).
    FieldState {
        /// When the sample was taken.
        at_ns: u64,
        /// Who took it.
        source: TriggerSource,
        /// The field's identity within the trigger ([`FieldInfo::key`]).
        key: String,
        /// Where it is.
        presence: FieldPresence,
        /// What the field is, for a field the controller may not know yet (a form whose
        /// values a reload restored, a card number shown as text): the rules decide on it.
        field: Option<FieldInfo>,
    },
    /// The page a browser tab shows is about to change (navigation, history step, tab
    /// switch): until the new page has reported what it shows, nothing is known of it.
    PageLeaving {
        /// When.
        at_ns: u64,
        /// Who saw it.
        source: TriggerSource,
    },
    /// The page now shown has reported its fields and card data: what it shows is known.
    PageSettled {
        /// When.
        at_ns: u64,
        /// Who saw it.
        source: TriggerSource,
    },
    /// A watcher's health changed: while a needed watcher is down, the screen is masked.
    Health {
        /// When.
        at_ns: u64,
        /// Which watcher.
        source: TriggerSource,
        /// Whether it works.
        healthy: bool,
        /// Why (no accessibility bus, host gone …).
        detail: String,
    },
}
