//! Masking for the Vigil agent (brief §5): the triggers that say when a payment field or a
//! payment step is on screen, and what they report.
//!
//! - [`TriggerEvent`]: what every trigger sends, stamped on the session clock.
//! - [`focus`]: the OS accessibility focus watcher (AT-SPI on Linux).
//! - [`RuleSet`]: what a focused field means (built-in payment rules, policy rules).
//! - [`MaskController`]: trigger events → mask commands (open/close spans), fail closed.
//! - [`DtmfDetector`]: when DTMF tones sound in a voice track (never which digits).
#![deny(missing_docs)]
// Unsafe code only in the Windows and macOS focus backends (COM and the AX C API), each of
// which allows it for itself; everywhere else, and on every other OS, it is forbidden.
#![cfg_attr(
    not(any(target_os = "windows", target_os = "macos")),
    forbid(unsafe_code)
)]
#![cfg_attr(any(target_os = "windows", target_os = "macos"), deny(unsafe_code))]

mod browser;
mod command;
mod controller;
mod dtmf;
pub mod focus;
mod held;
mod rules;
// A FocusGained carries its FieldInfo inline: a few events a second do not justify a Box in
// the interface every trigger shares.
#[allow(clippy::large_enum_variant)]
mod trigger;

pub use controller::{HeldField, MaskCommand, MaskController};
pub use dtmf::{DtmfDetector, ToneSpan};
pub use focus::{start_focus_watcher, FocusWatcher, FocusWatcherError, WatchedFields};
pub use rules::{
    default_rules, Action, Decision, Match, Rule, RuleError, RuleSet, ScreenAction, CARD_TEXT_ROLE,
    PASSWORD_RULE,
};
pub use trigger::{FieldInfo, FieldPresence, TriggerEvent, TriggerSource};
// What a mask does to the screen, as the media stage and the manifest say it too.
pub use vigil_proto::{Rect, ScreenMask};
