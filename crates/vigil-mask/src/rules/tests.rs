use super::*;

fn field(f: impl FnOnce(&mut FieldInfo)) -> FieldInfo {
    let mut x = FieldInfo::default();
    f(&mut x);
    x
}

#[test]
fn payment_fields_are_masked_in_four_languages_and_by_id_or_autocomplete() {
    let rules = RuleSet::defaults();
    let cases = [
        (
            field(|f| f.name = Some("Card number".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.name = Some("Numéro de carte".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.name = Some("Kartennummer".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.name = Some("Número de tarjeta".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.id = Some("card_number".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.html_name = Some("cardNumber".into())),
            "builtin.card-number",
        ),
        (
            field(|f| f.autocomplete = vec!["cc-number".into()]),
            "builtin.card-number",
        ),
        (
            field(|f| f.name = Some("Security code".into())),
            "builtin.security-code",
        ),
        (
            field(|f| f.name = Some("Cryptogramme visuel".into())),
            "builtin.security-code",
        ),
        (
            field(|f| f.name = Some("Kartenprüfnummer".into())),
            "builtin.security-code",
        ),
        (
            field(|f| f.name = Some("Código de seguridad".into())),
            "builtin.security-code",
        ),
        (
            field(|f| f.autocomplete = vec!["cc-csc".into()]),
            "builtin.security-code",
        ),
        (
            field(|f| f.name = Some("Expiry date".into())),
            "builtin.card-expiry",
        ),
        (
            field(|f| f.name = Some("Gültig bis".into())),
            "builtin.card-expiry",
        ),
        (
            field(|f| f.name = Some("Fecha de caducidad".into())),
            "builtin.card-expiry",
        ),
        (
            field(|f| f.autocomplete = vec!["cc-exp".into()]),
            "builtin.card-expiry",
        ),
    ];
    for (f, expected) in cases {
        let d = rules
            .decide(&f)
            .unwrap_or_else(|| panic!("{f:?} not masked"));
        assert_eq!(d.rule_id, expected, "{f:?}");
        assert!(d.action.audio);
    }
}

#[test]
fn ordinary_fields_are_not_masked() {
    let rules = RuleSet::defaults();
    for name in [
        "Name",
        "Email",
        "Phone",
        "Notes",
        "Order number",
        "Postcode",
    ] {
        assert_eq!(
            rules.decide(&field(|f| f.name = Some(name.into()))),
            None,
            "{name}"
        );
    }
}

#[test]
fn password_fields_are_always_masked() {
    let none = RuleSet::new(vec![]).unwrap();
    for f in [
        field(|f| f.password = true),
        field(|f| f.role = Some("password text".into())),
        field(|f| f.input_type = Some("password".into())),
    ] {
        assert_eq!(none.decide(&f).unwrap().rule_id, PASSWORD_RULE);
    }
}

#[test]
fn empty_and_duplicate_rules_are_refused() {
    let action = Action {
        screen: ScreenAction::Full,
        audio: false,
        tail_ms: 0,
    };
    let empty = Rule {
        id: "x".into(),
        all: Match::default(),
        any: vec![Match::default()],
        action,
    };
    assert_eq!(
        RuleSet::new(vec![empty]).unwrap_err(),
        RuleError::Empty("x".into())
    );
    let r = Rule {
        id: "y".into(),
        all: Match {
            app: vec!["crm".into()],
            ..Match::default()
        },
        any: vec![],
        action,
    };
    assert_eq!(
        RuleSet::new(vec![r.clone(), r]).unwrap_err(),
        RuleError::DuplicateId("y".into())
    );
}

#[test]
fn application_rules_restrict_where_a_pattern_applies() {
    let action = Action {
        screen: ScreenAction::Full,
        audio: false,
        tail_ms: 0,
    };
    let rule = Rule {
        id: "crm.account".into(),
        all: Match {
            url: vec!["crm.example.com/payments".into()],
            ..Match::default()
        },
        any: vec![],
        action,
    };
    let rules = RuleSet::new(vec![rule]).unwrap();
    assert!(rules
        .decide(&field(
            |f| f.url = Some("https://crm.example.com/payments/42".into())
        ))
        .is_some());
    assert!(rules
        .decide(&field(
            |f| f.url = Some("https://crm.example.com/cases".into())
        ))
        .is_none());
}

#[test]
fn site_rules_match_an_application_window_or_page_and_come_first() {
    let site: Vec<Rule> = serde_json::from_str(
        r#"[{"id": "site.pay-portal",
             "any": [{"url": ["pay.example.com/checkout"]}, {"window_title": ["Payment terminal"]}],
             "action": {"screen": "full", "audio": true, "tail_ms": 1000}}]"#,
    )
    .unwrap();
    let rules = RuleSet::with_site_rules(site).unwrap();
    let on = |url: Option<&str>, title: Option<&str>, name: Option<&str>| FieldInfo {
        url: url.map(Into::into),
        window_title: title.map(Into::into),
        name: name.map(Into::into),
        ..FieldInfo::default()
    };
    let id = |f: FieldInfo| rules.decide(&f).map(|d| d.rule_id);
    assert_eq!(
        id(on(
            Some("https://pay.example.com/checkout?x=1"),
            None,
            Some("Notes")
        )),
        Some("site.pay-portal".into()),
        "any element of the page"
    );
    assert_eq!(
        id(on(None, Some("Payment terminal - Acme"), None)),
        Some("site.pay-portal".into())
    );
    assert_eq!(
        id(on(
            Some("https://crm.example.com"),
            None,
            Some("Card number")
        )),
        Some("builtin.card-number".into()),
        "built-ins still apply elsewhere"
    );
    assert_eq!(
        id(on(Some("https://crm.example.com"), None, Some("Notes"))),
        None
    );
    let duplicate: Vec<Rule> = serde_json::from_str(
        r#"[{"id": "builtin.card-number", "any": [{"app": ["x"]}],
             "action": {"screen": "full", "audio": true, "tail_ms": 0}}]"#,
    )
    .unwrap();
    assert!(matches!(
        RuleSet::with_site_rules(duplicate),
        Err(RuleError::DuplicateId(_))
    ));
}
