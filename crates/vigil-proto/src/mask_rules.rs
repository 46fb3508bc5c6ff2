//! Masking rules as data (brief §5): what a policy carries and the vault validates. The
//! matching itself (against what the accessibility API reports of a focused field) lives in
//! `vigil-mask`, which re-exports these types.

use serde::{Deserialize, Serialize};

/// What a rule does to the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScreenAction {
    /// Black out the whole screen.
    Full,
    /// Black out the field's rectangle (with padding); falls back to full when no rectangle is known.
    Region,
    /// Leave the screen.
    None,
}

/// A rule's action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// Screen action.
    pub screen: ScreenAction,
    /// Silence both voice tracks.
    pub audio: bool,
    /// How long the mask stays after the field loses focus, in milliseconds.
    pub tail_ms: u64,
}

/// Patterns a field must match; each list is "any of", compared case-insensitively as
/// substrings (ids, names, labels) or exactly (autocomplete tokens, roles, input types).
/// Empty lists match anything; a rule with no patterns at all is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Match {
    /// Application names (substring).
    pub app: Vec<String>,
    /// Window titles (substring).
    pub window_title: Vec<String>,
    /// Page URLs (substring).
    pub url: Vec<String>,
    /// Accessible names / labels (substring).
    pub name: Vec<String>,
    /// Roles (exact).
    pub role: Vec<String>,
    /// Element ids (substring, separators ignored).
    pub id: Vec<String>,
    /// HTML names (substring, separators ignored).
    pub html_name: Vec<String>,
    /// Input types (exact).
    pub input_type: Vec<String>,
    /// Autocomplete tokens (exact).
    pub autocomplete: Vec<String>,
}

/// A masking rule. Within a rule, the field must match every non-empty list of `all`, and at
/// least one of the `any` alternatives when there are some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, written into the manifest of every span the rule masks.
    pub id: String,
    /// Conditions that must all hold (e.g. the application).
    #[serde(default)]
    pub all: Match,
    /// Alternatives of which one must hold (e.g. a label, an id or an autocomplete token).
    #[serde(default)]
    pub any: Vec<Match>,
    /// What to do.
    pub action: Action,
}

/// Why a rule set was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleError {
    /// A rule has no pattern at all: it would mask everything (or, read the other way, nothing
    /// anybody meant).
    #[error("rule {0:?} matches nothing in particular: give it at least one pattern")]
    Empty(String),
    /// Two rules share an id.
    #[error("rule id {0:?} is used twice")]
    DuplicateId(String),
}

impl Match {
    /// No pattern at all: matches anything.
    pub fn is_empty(&self) -> bool {
        self == &Match::default()
    }
}

impl Rule {
    /// A rule without any pattern would mask everything (or nothing anybody meant).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty() && self.any.iter().all(Match::is_empty)
    }
}

/// Checks a rule list: no rule without a pattern, no id used twice.
pub fn validate_rules(rules: &[Rule]) -> Result<(), RuleError> {
    let mut seen = std::collections::HashSet::new();
    for r in rules {
        if r.is_empty() {
            return Err(RuleError::Empty(r.id.clone()));
        }
        if !seen.insert(r.id.as_str()) {
            return Err(RuleError::DuplicateId(r.id.clone()));
        }
    }
    Ok(())
}
