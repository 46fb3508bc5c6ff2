//! Acceptance (issue 11): card data stays masked for as long as it is on screen, not only
//! while its field has focus.
//!
//! A checkout page of its own (`assets/pay/form.html`: card fields among billing-address
//! fields, no `autocomplete` hints, served over HTTP) in an ordinary Chromium window with the
//! extension and AT-SPI. The agent types the name on the card, the card number, the expiry and
//! the security code with Tab between them, then the address on the same page, and then goes
//! through every transition of the issue: the address bar, a scroll that takes the card out
//! of view and back, another window and back, another tab and back, a reload (Chromium
//! restores the values), a page that shows a stored card as text, history back and forward.
//!
//! Judged on every decoded frame: OCR never reads the typed digits, the expiry or the code (an
//! unmasked screenshot taken during the run proves OCR reads them); while only region masks
//! are in force, the address typed afterwards stays readable; the stored card on the receipt is
//! masked, the order number beside it (16 digits, not Luhn-valid) is not.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use common::frames::{self, ScreenSpan};
use common::pages::{key, pause, pay_server, type_text};
use common::*;
use vigil_e2e::TestDesktop;

const CARD: &str = "4000056655665556";
const EXPIRY: &str = "11/29";
const CODE: &str = "842";
const STORED_CARD: &str = "5105105105105100";
const ORDER_NUMBER: &str = "7301946528301947";
const STREET: &str = "12 HARBOUR ROAD";

/// Copies a frame where a failed run can be looked at (`$TMPDIR/vigil-card-visible/`).
fn keep_for_inspection(png: &Path, why: &str) {
    let dir = std::env::temp_dir().join("vigil-card-visible");
    let _ = std::fs::create_dir_all(&dir);
    let name = format!("{why}-{}", png.file_name().unwrap().to_string_lossy());
    let _ = std::fs::copy(png, dir.join(name));
}

/// One run at a time: a second desktop with its browser, agent and OCR on the same cores
/// delays the extension's reports past what the agent can date back, and the agent rightly
/// masks the whole screen then; these tests look at region masks as an agent's desk sees them.
static ONE_DESK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_desk() -> std::sync::MutexGuard<'static, ()> {
    ONE_DESK.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long within [from, to) the spans in force were all region masks (and some were).
fn region_only_ns(spans: &[ScreenSpan], from: u64, to: u64) -> u64 {
    let mut edges: Vec<u64> = spans
        .iter()
        .flat_map(|s| [s.start_ns, s.end_ns])
        .chain([from, to])
        .filter(|t| (from..=to).contains(t))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
        .windows(2)
        .filter(|w| {
            let now = frames::spans_at(spans, w[0]);
            !now.is_empty() && now.iter().all(|s| s.screen == "region")
        })
        .map(|w| w[1] - w[0])
        .sum()
}

/// A recording of one of the pay pages in an ordinary Chromium window with the extension and
/// AT-SPI: a tone as the caller (and speech as the agent when asked), the agent recording.
struct PayRun {
    desk: TestDesktop,
    id: Identity,
    spool: PathBuf,
    server: vigil_e2e::PageServer,
    shots: PathBuf,
    recording: std::cell::RefCell<Option<Child>>,
    _browser: vigil_e2e::Chromium,
    _sound: Vec<vigil_e2e::Player>,
}

/// What a run recorded: manifests, screen spans, the distinct decoded frames and their OCR.
struct Recorded {
    manifests: Vec<serde_json::Value>,
    spans: Vec<ScreenSpan>,
    all: Vec<frames::Frame>,
    distinct: Vec<frames::Frame>,
    texts: Vec<String>,
}

impl PayRun {
    /// Starts the desktop, the page server, the agent for `seconds` and the browser on
    /// `page`, and waits until the page is up.
    fn start(page: &str, seconds: u32, agent_speaks: bool) -> Self {
        let mut desk = TestDesktop::start().unwrap();
        desk.start_accessibility().unwrap();
        let id = identity(desk.dir());
        let tone = desk.tone_wav("caller", 440, seconds + 5).unwrap();
        let mut sound = vec![desk.play("caller", &tone).unwrap()];
        if agent_speaks {
            let speech = desk
                .speech_wav(
                    "agent",
                    "Could you read me the card number please",
                    seconds + 5,
                )
                .unwrap();
            sound.push(desk.play("micfeed", &speech).unwrap());
        }
        let server = pay_server(&desk);
        let spool = desk.dir().join("spool");
        let recording = agent(&desk)
            .args(["record", "--for", &seconds.to_string(), "--spool"])
            .arg(&spool)
            .args(["--recipient", &id.recipient])
            .stdout(Stdio::piped())
            .stderr(agent_log())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{}/{page}", server.port);
        let browser = vigil_e2e::Chromium::start_windowed(&desk, &url, Path::new(AGENT)).unwrap();
        let shots = desk.dir().join("shots");
        std::fs::create_dir_all(&shots).unwrap();
        pause(9_000);
        Self {
            desk,
            id,
            spool,
            server,
            shots,
            recording: std::cell::RefCell::new(Some(recording)),
            _browser: browser,
            _sound: sound,
        }
    }

    /// Types the card number, the expiry and the code with Tab between them, from the card
    /// number's field on; returns the oracle: a screenshot of the unmasked screen then, which
    /// shows what OCR must never read in the recording.
    fn type_card(&self) -> PathBuf {
        type_text(&self.desk, CARD);
        key(&self.desk, "Tab");
        type_text(&self.desk, EXPIRY);
        key(&self.desk, "Tab");
        type_text(&self.desk, CODE);
        frames::screenshot(&self.desk, &self.shots.join("typed"))
    }

    /// Waits for the recording to end; it must end well.
    fn wait_for_agent(&self) {
        let child = self.recording.borrow_mut().take().unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every distinct frame of the recording, decoded and read by OCR.
    fn recorded(&self) -> Recorded {
        let session = session_dir(&self.spool);
        let manifests = manifests(&session);
        let spans = frames::screen_spans(&manifests);
        let all = frames::decode_all(
            &self.id,
            &session,
            &manifests,
            &self.desk.dir().join("frames"),
        );
        let (distinct, texts) = frames::ocr_distinct(&all);
        eprintln!("{} frames decoded, {} distinct", all.len(), distinct.len());
        Recorded {
            manifests,
            spans,
            all,
            distinct,
            texts,
        }
    }
}

/// When each step of the run began (wall ns).
#[derive(Default, Debug)]
struct Steps {
    address_typed: u128,
    address_bar: u128,
    reload: u128,
    receipt: u128,
    /// The receipt's address entered (the form left for it).
    left_form: u128,
    /// The first history back to the form.
    back: u128,
    end: u128,
    /// The steps between (for a look at what masked them), in order.
    marks: Vec<(&'static str, u128)>,
}

#[test]
fn card_data_stays_masked_while_it_can_be_seen() {
    let _desk = one_desk();
    let run = PayRun::start("form.html", 85, true);
    let (desk, server, shots) = (&run.desk, &run.server, &run.shots);
    let mut steps = Steps::default();
    // The name has focus (autofocus); Tab on through the card fields, typing at once.
    type_text(desk, "JANE DOE");
    key(desk, "Tab");
    let oracle = run.type_card();
    key(desk, "Tab");
    type_text(desk, STREET);
    key(desk, "Tab");
    type_text(desk, "PORTSMOUTH");
    steps.address_typed = wall_now_ns();
    // Long enough for the extension's reports, late while Chromium catches up with the typing
    // on a loaded machine, to place the held fields again (the whole screen until then), and
    // for the caret to blink a few frames into the recording with region masks alone.
    pause(7_000);

    // The address bar, then back into the page (a blank part of it).
    steps.address_bar = wall_now_ns();
    key(desk, "ctrl+l");
    pause(2_500);
    xdotool(desk, &["mousemove", "1700", "1000", "click", "1"]);
    pause(1_500);

    // Scroll the card fields out of view and back.
    key(desk, "End");
    steps.marks.push(("End", wall_now_ns()));
    pause(2_500);
    key(desk, "Home");
    steps.marks.push(("Home", wall_now_ns()));
    pause(2_500);

    // Another window in front, typed into, then back.
    let (gtk, window) = start_gtk_form(desk);
    steps.marks.push(("window started", wall_now_ns()));
    xdotool(desk, &["windowmove", &window, "1000", "650"]);
    xdotool(desk, &["windowfocus", "--sync", &window]);
    pause(2_500);
    let browser = xdotool(desk, &["search", "--onlyvisible", "--class", "chromium"]);
    let browser = browser.lines().last().unwrap().to_string();
    xdotool(desk, &["windowfocus", "--sync", &browser]);
    steps.marks.push(("browser again", wall_now_ns()));
    drop(gtk);
    pause(2_000);

    // Another tab and back.
    key(desk, "ctrl+t");
    steps.marks.push(("new tab", wall_now_ns()));
    pause(2_500);
    key(desk, "ctrl+w");
    steps.marks.push(("tab closed", wall_now_ns()));
    pause(2_500);

    // The receipt (a stored card as text), history back to the form (Chromium restores its
    // values), forward to the receipt and back again.
    steps.receipt = wall_now_ns();
    key(desk, "ctrl+l");
    type_text(desk, &format!("127.0.0.1:{}/receipt.html\n", server.port));
    steps.left_form = wall_now_ns();
    // Leaving a page takes seconds on a loaded machine (the form moves, then goes).
    pause(5_500);
    steps.back = wall_now_ns();
    key(desk, "alt+Left");
    pause(3_000);
    // What history back showed, unmasked.
    let restored = frames::screenshot(desk, &shots.join("back"));
    pause(1_000);
    key(desk, "alt+Right");
    pause(3_500);
    key(desk, "alt+Left");
    pause(3_500);

    // Reload (the values come back or not: masked while shown either way).
    steps.reload = wall_now_ns();
    key(desk, "F5");
    pause(3_500);
    steps.end = wall_now_ns();

    run.wait_for_agent();
    eprintln!("steps: {steps:?}");

    // The oracle reads the card data on the unmasked screen.
    let seen = frames::ocr(&oracle);
    let oracle_reads = frames::leaked(&seen, &[CARD, EXPIRY]);
    assert!(
        oracle_reads.len() == 2,
        "OCR cannot read the typed card data on the unmasked screen, so it proves nothing: {seen}"
    );

    let Recorded {
        manifests,
        spans,
        all,
        distinct,
        texts,
    } = run.recorded();
    // No frame, inside a span or not, shows the card data.
    for (frame, text) in distinct.iter().zip(&texts) {
        let found = frames::leaked(text, &[CARD, EXPIRY, CODE, STORED_CARD]);
        if !found.is_empty() {
            keep_for_inspection(&frame.png, "leak");
            let near: Vec<&ScreenSpan> = spans
                .iter()
                .filter(|s| {
                    s.end_ns + 2_000_000_000 > frame.at_ns
                        && s.start_ns < frame.at_ns + 2_000_000_000
                })
                .collect();
            eprintln!("leak at {} ns; spans within 2 s: {near:#?}", frame.at_ns);
        }
        assert!(
            found.is_empty(),
            "frame {} (segment {}) shows {found:?}: {text}; spans then: {:?}",
            frame.png.display(),
            frame.segment + 1,
            frames::spans_at(&spans, frame.at_ns)
        );
    }

    let restored = frames::ocr(&restored);
    assert!(
        frames::leaked(&restored, &[CARD]).len() == 1,
        "history back did not restore the card number (the transition proves nothing): {restored}"
    );

    // Region masks kept the rest of the form readable: frames after the address was typed and
    // before the receipt, with only region masks in force and the form on screen, read the
    // address.
    let first = &manifests[0];
    let typed = wall_to_session(first, steps.address_typed);
    let reload = wall_to_session(first, steps.reload);
    let receipt = wall_to_session(first, steps.receipt);
    // Chromium keeps the form in its back/forward cache while the receipt shows, its fields
    // still answering "showing" at their old place: they are not on screen, and the
    // accessibility bus must not hold them there (a mask over the receipt's order number).
    // Judged on the receipt's last moments: the form goes seconds after its address is entered
    // on a loaded machine, and its masks a second after that.
    let back = wall_to_session(first, steps.back);
    // (Until a little before going back: a field that shows again is masked from 100 ms before.)
    let on_receipt = (back - 1_000_000_000, back - 200_000_000);
    let stale: Vec<&ScreenSpan> = spans
        .iter()
        .filter(|s| {
            s.trigger == "accessibility" && s.start_ns < on_receipt.1 && s.end_ns > on_receipt.0
        })
        .collect();
    assert!(
        stale.is_empty(),
        "the form's fields stayed masked on the receipt that replaced it (left at {} ns, back \
         at {back} ns): {stale:#?}",
        wall_to_session(first, steps.left_form)
    );
    // History back brings them back with their values: held again.
    assert!(
        spans.iter().any(|s| s.trigger == "accessibility"
            && s.end_ns > back
            && s.start_ns < back + 3_000_000_000),
        "the accessibility bus did not mask the card fields history back restored"
    );
    let region_only = |at: u64| {
        let now: Vec<&ScreenSpan> = frames::spans_at(&spans, at);
        !now.is_empty() && now.iter().all(|s| s.screen == "region")
    };
    let (mut form_frames, mut readable, mut on_form_frames) = (0, 0, 0);
    // Why the other form frames were masked whole (what to improve when too few are left).
    let mut masked_whole: std::collections::BTreeMap<String, usize> = Default::default();
    // Every frame counts (a still screen is one distinct picture over many frames).
    let every_text = frames::texts_of_every(&all, &distinct, &texts);
    for (frame, text) in all.iter().zip(&every_text) {
        let on_form = frame.at_ns > typed && frame.at_ns < receipt;
        on_form_frames += usize::from(on_form);
        if on_form && !region_only(frame.at_ns) {
            for s in frames::spans_at(&spans, frame.at_ns) {
                if s.screen != "region" {
                    let why = s.reason.split(" (").next().unwrap_or_default();
                    *masked_whole
                        .entry(format!("{}: {why}", s.trigger))
                        .or_default() += 1;
                }
            }
        }
        if on_form && region_only(frame.at_ns) && text.contains("Billingaddress") {
            form_frames += 1;
            if text.contains("HARBOUR") {
                readable += 1;
            } else {
                keep_for_inspection(&frame.png, "unreadable");
                eprintln!(
                    "address unreadable at {} ns: {text}; spans {:?}",
                    frame.at_ns,
                    frames::spans_at(&spans, frame.at_ns)
                );
            }
        }
    }
    eprintln!(
        "frames between the address and the receipt: {on_form_frames}; region-masked form frames: \
         {form_frames}, address readable in {readable}"
    );
    eprintln!("form frames masked whole, by span: {masked_whole:#?}");
    // The form stays still with its card fields held for seconds at a time (after typing, in
    // the address bar, after the scroll back, after the other window and tab): region masks
    // alone must be in force for a good part of that time. (Counted in time: the screen is
    // recorded at a variable frame rate, and a still form is a few frames a second at most.)
    let region_ms = region_only_ns(&spans, typed, receipt) / 1_000_000;
    let stretch_ms = (receipt - typed) / 1_000_000;
    eprintln!("region masks alone for {region_ms} ms of the {stretch_ms} ms on the form");
    if form_frames < 2 || region_ms * 10 < stretch_ms {
        // The spans of the stretch, to see what kept the screen masked whole.
        eprintln!("spans between the address and the receipt (ms after the address):");
        for s in spans
            .iter()
            .filter(|s| s.end_ns > typed && s.start_ns < receipt)
        {
            let at = |ns: u64| (ns as i64 - typed as i64) / 1_000_000;
            eprintln!(
                "  {:>6} .. {:>6}  {:<13} {:<6} {}",
                at(s.start_ns),
                at(s.end_ns.min(receipt)),
                s.trigger,
                s.screen,
                s.reason
            );
        }
        let at = |wall: u128| (wall_to_session(first, wall) as i64 - typed as i64) / 1_000_000;
        eprintln!(
            "steps (ms after the address): address bar {}, reload {}, receipt {}",
            at(steps.address_bar),
            at(steps.reload),
            at(steps.receipt)
        );
        for (what, wall) in &steps.marks {
            eprintln!("  {what}: {}", at(*wall));
        }
    }
    assert!(
        region_ms * 10 >= stretch_ms,
        "region masks alone for only {region_ms} ms of the {stretch_ms} ms on the form"
    );
    assert!(
        form_frames >= 2,
        "too few frames with only region masks to judge: {form_frames} of {on_form_frames}"
    );
    assert!(
        readable * 10 >= form_frames * 8,
        "the address was readable in only {readable} of {form_frames} region-masked frames"
    );

    // The receipt: the order number (not a card) is readable, the stored card is masked.
    // (OCR reads its leading 7 as "/" at times: the middle digits decide.)
    let order_read = distinct.iter().zip(&texts).any(|(f, t)| {
        f.at_ns > receipt
            && t.chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .contains(&ORDER_NUMBER[4..12])
    });
    if !order_read {
        for n in 0..3 {
            let log = desk.dir().join(format!("chromium-ext-{n}.log"));
            for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
                if line.contains("vigil") {
                    eprintln!("chromium: {line}");
                }
            }
        }
        for (f, t) in distinct
            .iter()
            .zip(&texts)
            .filter(|(f, _)| f.at_ns > receipt)
        {
            keep_for_inspection(&f.png, "receipt");
            eprintln!(
                "receipt: {} ns: {t}; spans {:?}",
                f.at_ns,
                frames::spans_at(&spans, f.at_ns)
            );
        }
    }
    assert!(order_read, "the Luhn-failing order number was masked too");
    assert!(
        spans
            .iter()
            .any(|s| s.rule_id.as_deref() == Some("builtin.card-text") && s.screen == "region"),
        "no region mask for the stored card shown as text"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.trigger == "extension" && s.screen == "region"),
        "the extension's region masks never applied"
    );
    assert!(
        spans
            .iter()
            .any(|s| s.trigger == "accessibility" && s.screen == "region"),
        "the accessibility bus never followed a field"
    );
    let end = wall_to_session(first, steps.end);
    assert!(
        all.iter()
            .any(|f| f.at_ns > end.saturating_sub(3_000_000_000)),
        "no frames at the end of the run"
    );
    eprintln!(
        "session times: address typed {typed}, address bar {}, reload {reload}, receipt {receipt}, end {end}",
        wall_to_session(first, steps.address_bar)
    );
}

/// Card fields hosted in a frame of another origin (as Stripe Elements, Braintree Hosted
/// Fields and Adyen serve them): placeholders only, no labels, no autocomplete hints. The
/// extension recognises them in the frame and maps their rectangles through the frame's
/// offset: masked in their region after focus moves on to the address, which stays readable.
#[test]
fn card_fields_in_a_cross_origin_frame_are_masked_in_their_region() {
    let _desk = one_desk();
    let run = PayRun::start("hosted.html", 30, false);
    let desk = &run.desk;
    // Tab into the frame's first field, then through the card fields to the street.
    key(desk, "Tab");
    let oracle = run.type_card();
    key(desk, "Tab");
    type_text(desk, STREET);
    let typed = wall_now_ns();
    run.wait_for_agent();
    let seen = frames::ocr(&oracle);
    assert_eq!(
        frames::leaked(&seen, &[CARD]),
        vec![CARD],
        "OCR cannot read the card number in the frame on the unmasked screen: {seen}"
    );

    let Recorded {
        manifests,
        spans,
        distinct,
        texts,
        ..
    } = run.recorded();
    for (frame, text) in distinct.iter().zip(&texts) {
        let found = frames::leaked(text, &[CARD, EXPIRY, CODE]);
        if !found.is_empty() {
            keep_for_inspection(&frame.png, "hosted-leak");
        }
        assert!(
            found.is_empty(),
            "frame at {} ns shows {found:?}: {text}; spans then: {:?}",
            frame.at_ns,
            frames::spans_at(&spans, frame.at_ns)
        );
    }
    assert!(
        spans.iter().any(|s| s.trigger == "extension"
            && s.screen == "region"
            && s.rule_id.as_deref() == Some("builtin.card-number")),
        "no region mask followed the framed card field: {spans:?}"
    );
    let typed = wall_to_session(&manifests[0], typed);
    let region_only: Vec<bool> = distinct
        .iter()
        .zip(&texts)
        .filter(|(f, _)| {
            let now = frames::spans_at(&spans, f.at_ns);
            f.at_ns > typed && !now.is_empty() && now.iter().all(|s| s.screen == "region")
        })
        .map(|(_, t)| t.contains("HARBOUR"))
        .collect();
    let readable_count = region_only.iter().filter(|r| **r).count();
    eprintln!(
        "hosted: {} region-only frames after typing, address readable in {readable_count}",
        region_only.len()
    );
    // Reported, not required: after Tab leaves the frame the accessibility bus does not
    // always see focus arrive in the parent page (the frame is another process), and the
    // security code's focus mask then stays on the whole screen: safe, but unreadable. The
    // address's readability beside region masks is required by the test above.
}
