//! Masking rules (brief §5): a match on what is known of the focused field or window, and an
//! action. Built-in defaults cover payment fields in English, French, German and Spanish; a
//! password field is always masked, whatever the rules say.

pub use vigil_proto::mask_rules::{Action, Match, Rule, RuleError, ScreenAction};

use crate::FieldInfo;

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

fn match_matches(m: &Match, f: &FieldInfo) -> bool {
    contains_any(&f.app, &m.app, false)
        && contains_any(&f.window_title, &m.window_title, false)
        && contains_any(&f.url, &m.url, false)
        && contains_any(&f.name, &m.name, false)
        && equals_any(&f.role, &m.role)
        && contains_any(&f.id, &m.id, true)
        && contains_any(&f.html_name, &m.html_name, true)
        && equals_any(&f.input_type, &m.input_type)
        && (m.autocomplete.is_empty()
            || f.autocomplete
                .iter()
                .any(|t| m.autocomplete.iter().any(|p| p.eq_ignore_ascii_case(t))))
}

fn rule_matches(r: &Rule, f: &FieldInfo) -> bool {
    match_matches(&r.all, f)
        && (r.any.is_empty() || r.any.iter().any(|m| !m.is_empty() && match_matches(m, f)))
}

/// The rule id used for password fields, which are masked whatever the rules say.
pub const PASSWORD_RULE: &str = "builtin.password";

/// The role a trigger gives a card number (or an expiry or security code beside a card label)
/// found in a page's visible text rather than in a field: the built-in rule
/// `builtin.card-text` masks its region; a site rule ahead of it can narrow that.
pub const CARD_TEXT_ROLE: &str = "card number text";

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
        vigil_proto::mask_rules::validate_rules(&rules)?;
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
            .find(|r| rule_matches(r, field))
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

/// Card data shown as text (a stored card on a confirmation page): its region, no voice.
fn card_text_rule() -> Rule {
    Rule {
        id: "builtin.card-text".into(),
        all: Match::default(),
        any: vec![Match {
            role: strings(&[CARD_TEXT_ROLE]),
            ..Match::default()
        }],
        action: Action {
            screen: ScreenAction::Region,
            audio: false,
            tail_ms: 0,
        },
    }
}

/// The built-in payment rules (English, French, German, Spanish labels; common ids; `cc-*`),
/// and card numbers shown as text.
pub fn default_rules() -> Vec<Rule> {
    vec![
        card_text_rule(),
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
