//! The controller's decisions, event by event.

use super::*;
use crate::FieldInfo;

fn card() -> FieldInfo {
    FieldInfo {
        name: Some("Card number".into()),
        ..FieldInfo::default()
    }
}

#[test]
fn focus_opens_at_the_event_and_blur_closes_after_the_tail() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Accessibility;
    let open = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000,
        source: src,
        field: card(),
    });
    let MaskCommand::Open {
        key,
        start_ns,
        screen,
        audio,
        ..
    } = open[0].clone()
    else {
        panic!()
    };
    assert_eq!((start_ns, screen, audio), (1_000, ScreenMask::Full, true));
    let close = c.on_event(&TriggerEvent::FocusLost {
        at_ns: 5_000,
        source: src,
        has_value: None,
    });
    assert_eq!(
        close[0],
        MaskCommand::Close {
            key,
            end_ns: 5_000 + 2_000_000_000
        }
    );
    // The typed number is still on screen: the screen (only) stays masked from the blur.
    assert!(matches!(
        close[1],
        MaskCommand::Open {
            start_ns: 5_000,
            screen: ScreenMask::Full,
            audio: false,
            ..
        }
    ));
}

#[test]
fn the_screen_stays_masked_until_another_page_has_focus() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Accessibility;
    let on_page = |name: &str, url: &str| FieldInfo {
        name: Some(name.into()),
        url: Some(url.into()),
        ..FieldInfo::default()
    };
    let checkout = "https://shop.example/checkout";
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000,
        source: src,
        field: on_page("Card number", checkout),
    });
    // Moving to the page's Pay button: the field's span ends at once, the screen stays.
    let moved = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 2_000,
        source: src,
        field: on_page("Pay", checkout),
    });
    let MaskCommand::Open { key: sticky, .. } = moved[1].clone() else {
        panic!("{moved:?}")
    };
    assert_eq!(moved.len(), 2, "{moved:?}");
    // Focus without a known page or window keeps it; another card field keeps it too.
    assert!(c
        .on_event(&TriggerEvent::FocusGained {
            at_ns: 3_000,
            source: src,
            field: FieldInfo::default(),
        })
        .is_empty());
    // The confirmation page: the card number is gone from the screen.
    let next = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 4_000,
        source: src,
        field: on_page("Order confirmed", "https://shop.example/done"),
    });
    assert_eq!(
        next,
        vec![MaskCommand::Close {
            key: sticky,
            end_ns: 4_000 + crate::held::PAGE_SETTLE_NS
        }]
    );
}

#[test]
fn new_rules_apply_from_the_next_focus() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Accessibility;
    let notes = || FieldInfo {
        app: Some("crm-desk".into()),
        name: Some("Notes".into()),
        ..FieldInfo::default()
    };
    let focus = |c: &mut MaskController, at_ns| {
        c.on_event(&TriggerEvent::FocusGained {
            at_ns,
            source: src,
            field: notes(),
        })
    };
    assert!(focus(&mut c, 1_000).is_empty(), "not a payment field");
    let site: Vec<crate::Rule> = serde_json::from_str(
        r#"[{"id": "site.crm", "all": {"app": ["crm-desk"]},
             "action": {"screen": "full", "audio": false, "tail_ms": 0}}]"#,
    )
    .unwrap();
    c.set_rules(RuleSet::with_site_rules(site).unwrap());
    c.on_event(&TriggerEvent::FocusLost {
        at_ns: 2_000,
        source: src,
        has_value: None,
    });
    let opened = focus(&mut c, 3_000);
    assert!(
        matches!(
            &opened[..],
            [MaskCommand::Open {
                screen: ScreenMask::Full,
                audio: false,
                ..
            }]
        ),
        "{opened:?}"
    );
}

#[test]
fn an_unmatched_field_opens_nothing_and_a_dead_watcher_masks_until_back() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Accessibility;
    let name = FieldInfo {
        name: Some("Name".into()),
        ..FieldInfo::default()
    };
    assert!(c
        .on_event(&TriggerEvent::FocusGained {
            at_ns: 1,
            source: src,
            field: name
        })
        .is_empty());
    let down = TriggerEvent::Health {
        at_ns: 10,
        source: src,
        healthy: false,
        detail: "bus gone".into(),
    };
    let open = c.on_event(&down);
    assert!(matches!(
        open[0],
        MaskCommand::Open {
            screen: ScreenMask::Full,
            ..
        }
    ));
    assert!(c.on_event(&down).is_empty(), "one span per outage");
    let up = c.on_event(&TriggerEvent::Health {
        at_ns: 20,
        source: src,
        healthy: true,
        detail: String::new(),
    });
    assert!(up.is_empty(), "back, but the focus is not known yet");
    let focus = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 30,
        source: src,
        field: FieldInfo {
            name: Some("Name".into()),
            ..FieldInfo::default()
        },
    });
    assert_eq!(focus.len(), 1, "{focus:?}");
    assert!(matches!(focus[0], MaskCommand::Close { end_ns: 30, .. }));
}

#[test]
fn another_trigger_releases_the_screen_only_for_another_page() {
    let mut c = MaskController::new(RuleSet::defaults());
    let checkout = "https://shop.example/checkout";
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000,
        source: TriggerSource::Accessibility,
        field: FieldInfo {
            name: Some("Card number".into()),
            url: Some(checkout.into()),
            window_title: Some("Checkout - Chromium".into()),
            ..FieldInfo::default()
        },
    });
    c.on_event(&TriggerEvent::FocusLost {
        at_ns: 2_000,
        source: TriggerSource::Accessibility,
        has_value: None,
    });
    let page = |url: &str| TriggerEvent::FocusGained {
        at_ns: 3_000,
        source: TriggerSource::Extension,
        field: FieldInfo {
            url: Some(url.into()),
            window_title: Some("Checkout".into()),
            ..FieldInfo::default()
        },
    };
    assert!(
        c.on_event(&page(&format!("{checkout}#summary"))).is_empty(),
        "the same page, seen by the extension"
    );
    let next = c.on_event(&page("https://shop.example/done"));
    assert!(matches!(next[..], [MaskCommand::Close { .. }]), "{next:?}");
}

const MS: u64 = 1_000_000;

fn keyed(name: &str, key: &str) -> FieldInfo {
    FieldInfo {
        name: Some(name.into()),
        key: Some(key.into()),
        url: Some("https://shop.example/checkout".into()),
        ..FieldInfo::default()
    }
}

fn rect(y: i32) -> Rect {
    Rect {
        x: 100,
        y,
        width: 300,
        height: 30,
    }
}

fn shown(at_ns: u64, source: TriggerSource, key: &str, r: Option<Rect>) -> TriggerEvent {
    TriggerEvent::FieldState {
        at_ns,
        source,
        key: key.into(),
        presence: FieldPresence::Shown { rect: r },
        field: None,
    }
}

fn state(at_ns: u64, source: TriggerSource, key: &str, presence: FieldPresence) -> TriggerEvent {
    TriggerEvent::FieldState {
        at_ns,
        source,
        key: key.into(),
        presence,
        field: None,
    }
}

/// The screen masks a command list opens, with their start.
fn opened(commands: &[MaskCommand]) -> Vec<(u64, ScreenMask)> {
    commands
        .iter()
        .filter_map(|c| match c {
            MaskCommand::Open {
                start_ns, screen, ..
            } => Some((*start_ns, *screen)),
            _ => None,
        })
        .collect()
}

fn closed(commands: &[MaskCommand]) -> Vec<u64> {
    commands
        .iter()
        .filter_map(|c| match c {
            MaskCommand::Close { end_ns, .. } => Some(*end_ns),
            _ => None,
        })
        .collect()
}

#[test]
fn a_followed_field_keeps_its_region_masked_after_tab_and_follows_it() {
    let mut c = MaskController::new(RuleSet::defaults());
    c.set_frame_interval(200 * MS);
    let src = TriggerSource::Extension;
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000 * MS,
        source: src,
        field: keyed("Card number", "f1"),
    });
    // Tab on to the address: the focus span (full screen, voice) ends after its tail, the
    // field is held: the whole screen until its position is known.
    let tab = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 2_000 * MS,
        source: src,
        field: keyed("Address", "f2"),
    });
    assert_eq!(
        opened(&tab),
        vec![(2_000 * MS, ScreenMask::Full)],
        "{tab:?}"
    );
    assert_eq!(c.held_fields(), 1);
    // Its position: the whole screen until the page has surely painted it, then its region
    // (with margin).
    const SETTLE: u64 = crate::held::MOVE_SETTLE_NS;
    let at = c.on_event(&shown(2_050 * MS, src, "f1", Some(rect(400))));
    let region = |y| crate::held::padded(rect(y));
    assert_eq!(closed(&at), vec![2_050 * MS + SETTLE]);
    assert_eq!(
        opened(&at),
        vec![(2_050 * MS, ScreenMask::Full), (2_050 * MS, region(400))]
    );
    // The same position again changes nothing; the move's whole-screen span ends SETTLE after
    // the last move (the page keeps confirming the place every 100 ms).
    let mut t = 2_150 * MS;
    while t <= 2_050 * MS + SETTLE {
        assert!(c.on_event(&shown(t, src, "f1", Some(rect(400)))).is_empty());
        assert!(c.tick(t + 50 * MS).is_empty() || t + 50 * MS >= 2_050 * MS + SETTLE);
        t += 100 * MS;
    }
    let last = t - 100 * MS;
    // A scroll moves it: the whole screen from the last confirmation of the old place until
    // SETTLE after the new one, then the new region.
    let moved_at = last + 100 * MS;
    let moved = c.on_event(&shown(moved_at, src, "f1", Some(rect(100))));
    assert_eq!(closed(&moved), vec![moved_at + SETTLE]);
    assert_eq!(
        opened(&moved),
        vec![(last, ScreenMask::Full), (moved_at, region(100))]
    );
    let mut t = moved_at + 100 * MS;
    while t <= moved_at + SETTLE {
        c.on_event(&shown(t, src, "f1", Some(rect(100))));
        t += 100 * MS;
    }
    assert_eq!(
        closed(&c.tick(moved_at + SETTLE + 10 * MS)),
        vec![moved_at + SETTLE]
    );
    // From here on, times relative to the last confirmation.
    let base = t - 100 * MS;
    // Reports 450 ms apart (more than a frame interval and the timer's jitter): the whole
    // screen for the time in between.
    let late = c.on_event(&shown(base + 450 * MS, src, "f1", Some(rect(100))));
    assert_eq!(
        opened(&late),
        vec![(base + 300 * MS, ScreenMask::Full)],
        "{late:?}"
    );
    assert_eq!(closed(&late), vec![base + 450 * MS]);
    // No report at all while the delay line (600 ms less 150 ms to act) runs out: the whole
    // screen from a frame interval after the last confirmation.
    assert!(
        c.tick(base + 650 * MS).is_empty(),
        "a report may still come"
    );
    let stale = c.tick(base + 1250 * MS);
    assert_eq!(
        opened(&stale),
        vec![(base + 750 * MS, ScreenMask::Full)],
        "{stale:?}"
    );
    // Hidden (another tab in front): nothing masked once the switch has painted.
    let hidden = c.on_event(&state(base + 1350 * MS, src, "f1", FieldPresence::Hidden));
    assert_eq!(closed(&hidden), vec![base + 1350 * MS + SETTLE]);
    assert!(
        c.tick(base + 7550 * MS).is_empty(),
        "hidden fields do not go stale"
    );
    // Back in front: the whole screen from just before it shows, then its region.
    let back = c.on_event(&shown(base + 8550 * MS, src, "f1", Some(rect(100))));
    assert_eq!(
        opened(&back),
        vec![
            (base + 8450 * MS, ScreenMask::Full),
            (base + 8550 * MS, region(100))
        ]
    );
    // Emptied or gone with its page: released after the rule's tail (2 s).
    let gone = c.on_event(&state(base + 9550 * MS, src, "f1", FieldPresence::Gone));
    assert_eq!(
        closed(&gone),
        vec![base + 8550 * MS + SETTLE, base + 11550 * MS]
    );
    assert_eq!(c.held_fields(), 0);
}

#[test]
fn a_blur_from_an_empty_field_holds_nothing() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Extension;
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000,
        source: src,
        field: keyed("Card number", "f1"),
    });
    let blur = c.on_event(&TriggerEvent::FocusLost {
        at_ns: 2_000,
        source: src,
        has_value: Some(false),
    });
    assert_eq!(blur.len(), 1, "{blur:?}");
    assert_eq!(c.held_fields(), 0);
}

#[test]
fn a_forged_extension_gone_does_not_end_what_the_accessibility_bus_still_sees() {
    let mut c = MaskController::new(RuleSet::defaults());
    // The accessibility bus sees focus on an unlabelled entry (no rule matches it there) a
    // few ms before the extension reports it as `cc-number`.
    let a11y = c.on_event(&TriggerEvent::FocusGained {
        at_ns: 995 * MS,
        source: TriggerSource::Accessibility,
        field: FieldInfo {
            role: Some("entry".into()),
            key: Some(":1.5/obj/42".into()),
            ..FieldInfo::default()
        },
    });
    assert!(a11y.is_empty());
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000 * MS,
        source: TriggerSource::Extension,
        field: FieldInfo {
            autocomplete: vec!["cc-number".into()],
            key: Some("frame1/3".into()),
            ..FieldInfo::default()
        },
    });
    let blur = c.on_event(&TriggerEvent::FocusLost {
        at_ns: 3_000 * MS,
        source: TriggerSource::Extension,
        has_value: Some(true),
    });
    assert!(
        blur.contains(&MaskCommand::Watch {
            source: TriggerSource::Accessibility,
            key: ":1.5/obj/42".into()
        }),
        "{blur:?}"
    );
    assert_eq!(c.held_fields(), 2);
    // The recorded person forges "gone" through the control API: the extension's hold ends,
    // the accessibility bus's does not.
    c.on_event(&state(
        3_100 * MS,
        TriggerSource::Extension,
        "frame1/3",
        FieldPresence::Gone,
    ));
    assert_eq!(c.held_fields(), 1);
    let seen = c.on_event(&shown(
        3_150 * MS,
        TriggerSource::Accessibility,
        ":1.5/obj/42",
        Some(rect(500)),
    ));
    assert_eq!(
        opened(&seen),
        vec![
            (3_150 * MS, ScreenMask::Full),
            (3_150 * MS, crate::held::padded(rect(500)))
        ]
    );
    // The bus says it is empty: now it ends, and the watcher stops polling it.
    let gone = c.on_event(&state(
        4_000 * MS,
        TriggerSource::Accessibility,
        ":1.5/obj/42",
        FieldPresence::Gone,
    ));
    assert!(gone.contains(&MaskCommand::Unwatch {
        source: TriggerSource::Accessibility,
        key: ":1.5/obj/42".into()
    }));
    assert_eq!(c.held_fields(), 0);
}

#[test]
fn fields_first_seen_by_a_sample_are_held_when_the_rules_mask_them() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Extension;
    let with = |name: &str, role: Option<&str>| TriggerEvent::FieldState {
        at_ns: 5_000 * MS,
        source: src,
        key: name.into(),
        presence: FieldPresence::Shown {
            rect: Some(rect(200)),
        },
        field: Some(FieldInfo {
            name: Some(name.into()),
            role: role.map(str::to_string),
            ..FieldInfo::default()
        }),
    };
    // A reload restored the card number: masked in its region.
    let restored = c.on_event(&with("Card number", None));
    assert!(opened(&restored).contains(&(5_000 * MS, crate::held::padded(rect(200)))));
    // A card number shown as text on a confirmation page.
    let text = c.on_event(&with("stored card", Some(crate::rules::CARD_TEXT_ROLE)));
    assert!(!opened(&text).is_empty(), "{text:?}");
    // A field no rule masks is not held.
    assert!(c.on_event(&with("Street", None)).is_empty());
    assert_eq!(c.held_fields(), 2);
}

#[test]
fn only_an_accessibility_focus_on_the_same_place_witnesses_an_extension_field() {
    let mut c = MaskController::new(RuleSet::defaults());
    let a11y = |c: &mut MaskController, at_ns: u64, key: &str, y: i32| {
        c.on_event(&TriggerEvent::FocusGained {
            at_ns,
            source: TriggerSource::Accessibility,
            field: FieldInfo {
                role: Some("entry".into()),
                key: Some(key.into()),
                rect: Some(rect(y)),
                ..FieldInfo::default()
            },
        })
    };
    // The field before (the name), 600 ms earlier, elsewhere on the screen.
    a11y(&mut c, 400 * MS, "name", 100);
    // The frame's document, which contains the field, at the same moment.
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 990 * MS,
        source: TriggerSource::Accessibility,
        field: FieldInfo {
            role: Some("document web".into()),
            key: Some("frame-document".into()),
            rect: Some(Rect {
                x: 0,
                y: 0,
                width: 1920,
                height: 1000,
            }),
            ..FieldInfo::default()
        },
    });
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000 * MS,
        source: TriggerSource::Extension,
        field: FieldInfo {
            autocomplete: vec!["cc-csc".into()],
            key: Some("f/9".into()),
            rect: Some(rect(300)),
            ..FieldInfo::default()
        },
    });
    // The field after (the street), 300 ms later, elsewhere: not the same field either.
    a11y(&mut c, 1_300 * MS, "street", 500);
    let blur = c.on_event(&TriggerEvent::FocusLost {
        at_ns: 1_300 * MS,
        source: TriggerSource::Extension,
        has_value: Some(true),
    });
    assert!(
        !blur.iter().any(|m| matches!(m, MaskCommand::Watch { .. })),
        "{blur:?}"
    );
    assert_eq!(c.held_fields(), 1, "the extension's own hold only");
}

#[test]
fn a_page_change_masks_the_screen_until_the_next_page_settles_or_five_seconds_pass() {
    let mut c = MaskController::new(RuleSet::defaults());
    let src = TriggerSource::Extension;
    let leaving = c.on_event(&TriggerEvent::PageLeaving {
        at_ns: 1_000 * MS,
        source: src,
    });
    assert_eq!(opened(&leaving), vec![(1_000 * MS, ScreenMask::Full)]);
    let settled = c.on_event(&TriggerEvent::PageSettled {
        at_ns: 1_150 * MS,
        source: src,
    });
    assert_eq!(closed(&settled), vec![1_150 * MS]);
    // A page where the extension does not run never settles.
    c.on_event(&TriggerEvent::PageLeaving {
        at_ns: 5_000 * MS,
        source: src,
    });
    assert!(c.tick(9_000 * MS).is_empty());
    assert_eq!(closed(&c.tick(10_100 * MS)), vec![10_000 * MS]);
}

#[test]
fn a_browser_the_extension_does_not_watch_masks_the_screen_while_it_has_focus() {
    let in_app = |app: &str, name: &str| FieldInfo {
        app: Some(app.into()),
        name: Some(name.into()),
        ..FieldInfo::default()
    };
    let a11y = TriggerSource::Accessibility;
    let focus = |c: &mut MaskController, at_ns, app: &str| {
        c.on_event(&TriggerEvent::FocusGained {
            at_ns,
            source: a11y,
            field: in_app(app, "Receipt"),
        })
    };
    // Without the extension expected (field masking off), browsers are not special.
    let mut plain = MaskController::new(RuleSet::defaults());
    assert!(focus(&mut plain, 1_000, "Chromium").is_empty());

    let mut c = MaskController::new(RuleSet::defaults());
    c.expect_extension();
    // Another application: nothing. A browser before its extension attached: the whole screen.
    assert!(focus(&mut c, 1_000, "gedit").is_empty());
    let opened = focus(&mut c, 2_000, "Google Chrome");
    let [MaskCommand::Open {
        key,
        start_ns: 2_000,
        screen: ScreenMask::Full,
        audio: false,
        ..
    }] = opened.as_slice()
    else {
        panic!("{opened:?}")
    };
    let key = *key;
    assert!(
        focus(&mut c, 2_500, "Chromium").is_empty(),
        "already masked"
    );
    // The extension attaches: the mask stays until it has said what the page shows.
    let attached = c.on_event(&TriggerEvent::Health {
        at_ns: 3_000,
        source: TriggerSource::Extension,
        healthy: true,
        detail: "browser extension attached".into(),
    });
    assert!(attached.is_empty(), "{attached:?}");
    let settled = c.on_event(&TriggerEvent::PageSettled {
        at_ns: 3_100,
        source: TriggerSource::Extension,
    });
    assert!(settled.contains(&MaskCommand::Close { key, end_ns: 3_100 }));
    // Attached: focus in the browser is the extension's to judge.
    assert!(focus(&mut c, 4_000, "Chromium").is_empty());

    // Attached but silent about the page (one it cannot run in): ended after 5 s.
    let mut c = MaskController::new(RuleSet::defaults());
    c.expect_extension();
    let opened = focus(&mut c, 1_000, "Chromium");
    let MaskCommand::Open { key, .. } = opened[0].clone() else {
        panic!("{opened:?}")
    };
    c.on_event(&TriggerEvent::Health {
        at_ns: 2_000,
        source: TriggerSource::Extension,
        healthy: true,
        detail: String::new(),
    });
    assert!(c.tick(4_000_000_000).is_empty());
    assert_eq!(
        c.tick(5_000_002_001),
        vec![MaskCommand::Close {
            key,
            end_ns: 5_000_002_000
        }]
    );

    // Another browser without the extension, then focus leaves for another application.
    let mut c = MaskController::new(RuleSet::defaults());
    c.expect_extension();
    let opened = focus(&mut c, 1_000, "Firefox");
    let MaskCommand::Open { key, .. } = opened[0].clone() else {
        panic!("{opened:?}")
    };
    let left = focus(&mut c, 5_000, "gedit");
    assert_eq!(
        left,
        vec![MaskCommand::Close {
            key,
            end_ns: 5_000 + crate::held::PAGE_SETTLE_NS
        }]
    );
}

#[test]
fn a_field_whose_page_went_with_focus_in_it_is_not_held() {
    let ext = TriggerSource::Extension;
    let keyed = |key: &str| FieldInfo {
        key: Some(key.into()),
        ..card()
    };
    let focus_elsewhere = |c: &mut MaskController, at_ns| {
        c.on_event(&TriggerEvent::FocusGained {
            at_ns,
            source: ext,
            field: FieldInfo {
                name: Some("Street".into()),
                key: Some("d2/1".into()),
                ..FieldInfo::default()
            },
        })
    };
    // The page unloads with the card field focused: "gone" comes before focus lands on the
    // next page. No report will ever follow that key: it is not held.
    let mut c = MaskController::new(RuleSet::defaults());
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 1_000,
        source: ext,
        field: keyed("d1/3"),
    });
    c.on_event(&state(2_000, ext, "d1/3", FieldPresence::Gone));
    focus_elsewhere(&mut c, 3_000);
    assert_eq!(c.held_fields(), 0);
    // Shown again (a page restored from the back/forward cache keeps its keys): held as usual.
    c.on_event(&TriggerEvent::FocusGained {
        at_ns: 4_000,
        source: ext,
        field: keyed("d1/3"),
    });
    c.on_event(&shown(4_100, ext, "d1/3", Some(rect(200))));
    focus_elsewhere(&mut c, 5_000);
    assert_eq!(c.held_fields(), 1);
}

#[test]
fn an_extension_attaching_masks_from_as_far_back_as_its_reports_go_until_it_reports() {
    let mut c = MaskController::new(RuleSet::defaults());
    c.expect_extension();
    let s = 1_000_000_000;
    let attached = c.on_event(&TriggerEvent::Health {
        at_ns: 10 * s,
        source: TriggerSource::Extension,
        healthy: true,
        detail: "browser extension attached".into(),
    });
    let [MaskCommand::Open {
        key,
        start_ns,
        screen: ScreenMask::Full,
        ..
    }] = attached.as_slice()
    else {
        panic!("{attached:?}")
    };
    assert_eq!(*start_ns, 10 * s - s / 2);
    // Its first report (dated back as far as allowed) ends it.
    let reported = c.on_event(&TriggerEvent::PageSettled {
        at_ns: 10 * s + 100,
        source: TriggerSource::Extension,
    });
    assert!(reported.contains(&MaskCommand::Close {
        key: *key,
        end_ns: 10 * s + 100
    }));
    // Without field masking relying on the extension, attaching masks nothing.
    let mut plain = MaskController::new(RuleSet::defaults());
    assert!(plain
        .on_event(&TriggerEvent::Health {
            at_ns: 10 * s,
            source: TriggerSource::Extension,
            healthy: true,
            detail: String::new(),
        })
        .is_empty());
}
