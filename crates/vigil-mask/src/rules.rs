//! Masking rules (brief §5): a match on what is known of the focused field or window, and an
//! action. Built-in defaults cover payment fields in English, French, German and Spanish; a
//! password field is always masked, whatever the rules say.

use serde::{Deserialize, Serialize};

use crate::FieldInfo;

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
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
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

fn folded(s: &str) -> String {
    s.to_lowercase()
}

/// Ids and names are compared without separators: `card-number`, `card_number`, `cardNumber`.
fn squashed(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn contains_any(value: &Option<String>, patterns: &[String], squash: bool) -> bool {
    let norm = |s: &str| if squash { squashed(s) } else { folded(s) };
    patterns.is_empty()
        || value.as_deref().is_some_and(|v| {
            let v = norm(v);
            patterns.iter().any(|p| v.contains(&norm(p)))
        })
}

fn equals_any(value: &Option<String>, patterns: &[String]) -> bool {
    patterns.is_empty()
        || value
            .as_deref()
            .is_some_and(|v| patterns.iter().any(|p| p.eq_ignore_ascii_case(v)))
}

impl Match {
    fn is_empty(&self) -> bool {
        self == &Match::default()
    }

    fn matches(&self, f: &FieldInfo) -> bool {
        contains_any(&f.app, &self.app, false)
            && contains_any(&f.window_title, &self.window_title, false)
            && contains_any(&f.url, &self.url, false)
            && contains_any(&f.name, &self.name, false)
            && equals_any(&f.role, &self.role)
            && contains_any(&f.id, &self.id, true)
            && contains_any(&f.html_name, &self.html_name, true)
            && equals_any(&f.input_type, &self.input_type)
            && (self.autocomplete.is_empty()
                || f.autocomplete
                    .iter()
                    .any(|t| self.autocomplete.iter().any(|p| p.eq_ignore_ascii_case(t))))
    }
}

impl Rule {
    fn matches(&self, f: &FieldInfo) -> bool {
        self.all.matches(f)
            && (self.any.is_empty() || self.any.iter().any(|m| !m.is_empty() && m.matches(f)))
    }
}

/// The rule id used for password fields, which are masked whatever the rules say.
pub const PASSWORD_RULE: &str = "builtin.password";

/// A validated, ordered set of rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

/// The decision for a field: which rule, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The matching rule's id.
    pub rule_id: String,
    /// Its action.
    pub action: Action,
}

impl RuleSet {
    /// Validates rules (no empty rule, no duplicate id).
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleError> {
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if r.all.is_empty() && r.any.iter().all(Match::is_empty) {
                return Err(RuleError::Empty(r.id.clone()));
            }
            if !seen.insert(r.id.clone()) {
                return Err(RuleError::DuplicateId(r.id.clone()));
            }
        }
        Ok(Self { rules })
    }

    /// The built-in payment rules.
    pub fn defaults() -> Self {
        Self::new(default_rules()).expect("built-in rules are valid")
    }

    /// Site rules (configuration, later vault policy) ahead of the built-in ones: an
    /// application, window-title or URL rule names the span it opens; the built-ins still catch
    /// every payment field the site rules do not mention.
    pub fn with_site_rules(site: Vec<Rule>) -> Result<Self, RuleError> {
        let mut rules = site;
        rules.extend(default_rules());
        Self::new(rules)
    }

    /// The first rule that matches the field; a password field always masks.
    pub fn decide(&self, field: &FieldInfo) -> Option<Decision> {
        let password = field.password
            || field
                .role
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("password text"))
            || field
                .input_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("password"));
        if password {
            return Some(Decision {
                rule_id: PASSWORD_RULE.into(),
                action: Action {
                    screen: ScreenAction::Region,
                    audio: false,
                    tail_ms: 0,
                },
            });
        }
        self.rules
            .iter()
            .find(|r| r.matches(field))
            .map(|r| Decision {
                rule_id: r.id.clone(),
                action: r.action,
            })
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn payment_rule(id: &str, labels: &[&str], ids: &[&str], autocomplete: &[&str]) -> Rule {
    Rule {
        id: id.into(),
        all: Match::default(),
        any: vec![
            Match {
                name: strings(labels),
                ..Match::default()
            },
            Match {
                id: strings(ids),
                ..Match::default()
            },
            Match {
                html_name: strings(ids),
                ..Match::default()
            },
            Match {
                autocomplete: strings(autocomplete),
                ..Match::default()
            },
        ],
        // Card data on screen and read aloud: black the screen and silence both tracks until
        // two seconds after the field is left.
        action: Action {
            screen: ScreenAction::Full,
            audio: true,
            tail_ms: 2_000,
        },
    }
}

/// The built-in payment rules (English, French, German, Spanish labels; common ids; `cc-*`).
pub fn default_rules() -> Vec<Rule> {
    vec![
        payment_rule(
            "builtin.card-number",
            &[
                "card number",
                "credit card",
                "debit card",
                "card no",
                "numéro de carte",
                "numero de carte",
                "carte bancaire",
                "carte de crédit",
                "kartennummer",
                "kreditkarte",
                "número de tarjeta",
                "numero de tarjeta",
                "tarjeta de crédito",
                "tarjeta de credito",
            ],
            &[
                "cardnumber",
                "ccnumber",
                "ccnum",
                "creditcard",
                "cardno",
                "kartennummer",
                "numerotarjeta",
            ],
            &["cc-number"],
        ),
        payment_rule(
            "builtin.security-code",
            &[
                "security code",
                "cvv",
                "cvc",
                "cvn",
                "card verification",
                "cryptogramme",
                "code de sécurité",
                "code de securite",
                "prüfnummer",
                "pruefnummer",
                "sicherheitscode",
                "código de seguridad",
                "codigo de seguridad",
            ],
            &[
                "cvv",
                "cvc",
                "csc",
                "securitycode",
                "cardcode",
                "cardverification",
            ],
            &["cc-csc"],
        ),
        payment_rule(
            "builtin.card-expiry",
            &[
                "expiry",
                "expiration",
                "exp date",
                "valid thru",
                "valid until",
                "date d'expiration",
                "date d’expiration",
                "ablaufdatum",
                "gültig bis",
                "gueltig bis",
                "fecha de caducidad",
                "fecha de vencimiento",
                "vencimiento",
                "caducidad",
            ],
            &[
                "ccexp",
                "cardexpiry",
                "expirydate",
                "expirationdate",
                "expdate",
            ],
            &["cc-exp", "cc-exp-month", "cc-exp-year"],
        ),
    ]
}

#[cfg(test)]
mod tests;
