//! What weakens recording or masking, so that the vault can reserve it to those allowed to
//! relax policy (compliance), whoever else may edit policy: a supervisor tunes their team's
//! frame rate, but switching off payment masking, recording less, keeping recordings shorter
//! or giving agents more room to pause is not theirs to decide (PCI DSS 3.3.1, 10.5.1).

use crate::mask_rules::{Rule, ScreenAction};
use crate::policy::{Policy, PolicyLayer};

/// The settings that `after` weakens compared with `before`, by field name: masking or
/// recording switched off, a shorter retention, a shorter delay line (decisions come too late
/// to mask), more room for pauses and manual masks, or a site rule that leaves a field's screen
/// or audio unmasked.
pub fn weakened(before: &Policy, after: &Policy) -> Vec<&'static str> {
    let off = |b: bool, a: bool| b && !a;
    let mut fields = Vec::new();
    for (name, weaker) in [
        ("voice", off(before.voice, after.voice)),
        ("screen", off(before.screen, after.screen)),
        ("dtmf_masking", off(before.dtmf_masking, after.dtmf_masking)),
        (
            "focus_masking",
            off(before.focus_masking, after.focus_masking),
        ),
        (
            "retention_voice_days",
            after.retention_voice_days < before.retention_voice_days,
        ),
        (
            "retention_screen_days",
            after.retention_screen_days < before.retention_screen_days,
        ),
        ("mask_delay_ms", after.mask_delay_ms < before.mask_delay_ms),
        (
            "pause_allowed",
            !before.pause_allowed && after.pause_allowed,
        ),
        (
            "pause_max_seconds",
            after.pause_allowed && after.pause_max_seconds > before.pause_max_seconds,
        ),
        (
            "pause_daily_budget_seconds",
            after.pause_allowed
                && after.pause_daily_budget_seconds > before.pause_daily_budget_seconds,
        ),
        (
            "api_mask_max_seconds",
            after.api_mask_max_seconds > before.api_mask_max_seconds,
        ),
        (
            "mask_rules",
            after
                .mask_rules
                .iter()
                .any(|r| leaves_unmasked(r) && !before.mask_rules.contains(r)),
        ),
    ] {
        if weaker {
            fields.push(name);
        }
    }
    fields
}

/// Whether a site rule lets what it matches through (screen or audio unmasked).
fn leaves_unmasked(rule: &Rule) -> bool {
    rule.action.screen == ScreenAction::None || !rule.action.audio
}

/// The fields the organization layer locks that a team's or an agent's layer changes from
/// `old` to `new` to a value of its own (a value kept from before the lock is no change, and
/// dropping a field falls back to the organization's).
pub fn locked_changes(
    organization: &PolicyLayer,
    old: Option<&PolicyLayer>,
    new: &PolicyLayer,
) -> Vec<String> {
    let as_json = |l: Option<&PolicyLayer>| {
        l.and_then(|l| serde_json::to_value(l).ok())
            .unwrap_or_default()
    };
    let (old, new_json) = (as_json(old), as_json(Some(new)));
    organization
        .locks()
        .iter()
        .filter(|field| new.sets(field) && new_json.get(field) != old.get(field))
        .cloned()
        .collect()
}

/// The locks `before` held that `after` no longer does (an organization layer unlocking).
pub fn unlocked(before: &PolicyLayer, after: &PolicyLayer) -> Vec<String> {
    before
        .locks()
        .iter()
        .filter(|field| !after.locks().contains(field))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::LayerScope;

    fn layer(json: &str) -> PolicyLayer {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn switching_masking_off_or_keeping_less_is_a_weakening() {
        let org = PolicyLayer::default();
        let before = Policy::resolve(&org, None, None).unwrap();
        let point_1 = layer(
            r#"{"dtmf_masking": false, "focus_masking": false,
                "retention_voice_days": 1, "retention_screen_days": 1}"#,
        );
        let after = Policy::resolve(&org, Some(&point_1), None).unwrap();
        assert_eq!(
            weakened(&before, &after),
            [
                "dtmf_masking",
                "focus_masking",
                "retention_voice_days",
                "retention_screen_days"
            ]
        );
        // The other way round strengthens: nothing to reserve.
        assert!(weakened(&after, &before).is_empty());
        let tuning = layer(r#"{"fps": 2, "max_height": 720}"#);
        let tuned = Policy::resolve(&org, Some(&tuning), None).unwrap();
        assert!(weakened(&before, &tuned).is_empty());
        let off = layer(r#"{"voice": false, "screen": false, "pause_allowed": true}"#);
        let recording_less = Policy::resolve(&org, Some(&off), None).unwrap();
        assert_eq!(
            weakened(&before, &recording_less),
            ["voice", "screen", "pause_allowed"]
        );
    }

    #[test]
    fn a_site_rule_that_lets_a_field_through_is_a_weakening() {
        let org = PolicyLayer::default();
        let before = Policy::resolve(&org, None, None).unwrap();
        let none = layer(
            r#"{"mask_rules": [{"id": "crm", "all": {"url": ["crm.example"]},
                "action": {"screen": "none", "audio": false, "tail_ms": 0}}]}"#,
        );
        let after = Policy::resolve(&org, Some(&none), None).unwrap();
        assert_eq!(weakened(&before, &after), ["mask_rules"]);
        let full = layer(
            r#"{"mask_rules": [{"id": "crm", "all": {"url": ["crm.example"]},
                "action": {"screen": "full", "audio": true, "tail_ms": 0}}]}"#,
        );
        let stricter = Policy::resolve(&org, Some(&full), None).unwrap();
        assert!(weakened(&before, &stricter).is_empty());
    }

    #[test]
    fn locks_belong_to_the_organization_and_name_real_fields() {
        let org = layer(r#"{"locked": ["dtmf_masking", "fps"]}"#);
        org.validate(LayerScope::Organization).unwrap();
        assert!(org.validate(LayerScope::Team).is_err());
        assert!(layer(r#"{"locked": ["fsp"]}"#)
            .validate(LayerScope::Organization)
            .is_err());
        let team = layer(r#"{"fps": 3, "voice": true}"#);
        assert_eq!(locked_changes(&org, None, &team), ["fps"]);
        // Kept as it was before the lock: no change; dropped: the organization's value.
        assert!(locked_changes(&org, Some(&team), &team).is_empty());
        assert!(locked_changes(&org, Some(&team), &layer(r#"{"voice": false}"#)).is_empty());
        let fewer = layer(r#"{"locked": ["fps"]}"#);
        assert_eq!(unlocked(&org, &fewer), ["dtmf_masking"]);
        assert!(unlocked(&fewer, &org).is_empty());
    }
}
