//! What the bench does on the test desktop: one trial per transition of issue 11 on the pay
//! pages, in an ordinary Chromium window (address bar, tabs, windows) with the extension.

use std::time::Duration;

use anyhow::{bail, Result};
use vigil_e2e::TestDesktop;

/// The card data typed in every trial (Luhn-valid), and the stored card the receipt shows.
pub const CARD: &str = "4000056655665556";
pub const EXPIRY: &str = "11/29";
/// Four digits (as an American Express code): three could be part of the page server's port.
pub const CODE: &str = "7305";
pub const STORED_CARD: &str = "5105105105105100";
/// The receipt's order number: 16 digits that fail the Luhn check (must stay readable).
pub const ORDER_NUMBER: &str = "7301946528301947";
pub const STREET: &str = "12 HARBOUR ROAD";

/// Where the card number's field is on screen (the window at 0,0 with its tab strip and
/// toolbar above the page), and a blank part of the page.
const CARD_FIELD: (u32, u32) = (1180, 304);
const BLANK: (u32, u32) = (1700, 1000);

/// What happens after the card data is typed (or, for `Text`, instead of typing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Tab on to the street and type it.
    Tab,
    /// Into the address bar, then back into the page.
    AddressBar,
    /// The card fields scrolled out of view and back.
    Scroll,
    /// A reload (Chromium restores the values).
    Reload,
    /// Another page, then history back (values restored).
    Back,
    /// Another window in front, then back.
    Window,
    /// No typing: a receipt that shows a stored card as text.
    Text,
}

impl Transition {
    pub const ALL: [Transition; 7] = [
        Self::Tab,
        Self::AddressBar,
        Self::Scroll,
        Self::Reload,
        Self::Back,
        Self::Window,
        Self::Text,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Tab => "tab",
            Self::AddressBar => "address-bar",
            Self::Scroll => "scroll",
            Self::Reload => "reload",
            Self::Back => "history-back",
            Self::Window => "window",
            Self::Text => "stored-card",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        match Self::ALL.into_iter().find(|t| t.name() == name) {
            Some(t) => Ok(t),
            None => bail!(
                "unknown transition {name:?}; known: {}",
                Self::ALL.map(Self::name).join(", ")
            ),
        }
    }
}

/// When each step of one trial began (wall ns).
#[derive(Debug, Clone)]
pub struct Trial {
    pub transition: Transition,
    /// The fresh page was asked for.
    pub start: i128,
    /// The click into the card number's field (0 for `Text`).
    pub focus: i128,
    /// Typing began at once after the click, or 400 ms later.
    pub typed_at_once: bool,
    /// Tab out of the security code (the last card field's blur).
    pub card_done: i128,
    /// The transition began.
    pub transition_at: i128,
    /// The trial ended.
    pub end: i128,
}

pub fn wall_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The desktop driven by xdotool, and the page server's port.
pub struct Driver<'a> {
    pub desk: &'a TestDesktop,
    pub port: u16,
}

impl Driver<'_> {
    fn xdotool(&self, args: &[&str]) -> Result<()> {
        let status = self
            .desk
            .command("timeout")
            .args(["30", "xdotool"])
            .args(args)
            .status()?;
        if !status.success() {
            bail!("xdotool {args:?}: {status}");
        }
        Ok(())
    }

    fn key(&self, keys: &str) -> Result<()> {
        self.xdotool(&["key", "--clearmodifiers", keys])
    }

    /// Types as a fast typist does (40 ms a key).
    fn type_text(&self, text: &str) -> Result<()> {
        self.xdotool(&["type", "--delay", "40", text])
    }

    fn click(&self, (x, y): (u32, u32)) -> Result<()> {
        self.xdotool(&["mousemove", &x.to_string(), &y.to_string(), "click", "1"])
    }

    /// Opens `path` of the page server through the address bar.
    fn open(&self, path: &str) -> Result<()> {
        self.key("ctrl+l")?;
        // An address typed quickly (as pasted): the trials are about the card, not the URL.
        let url = format!("127.0.0.1:{}/{path}\n", self.port);
        self.xdotool(&["type", "--delay", "5", &url])
    }

    /// One trial: a fresh checkout page, the card data typed (at once after the click or after
    /// a pause), then the transition.
    pub fn trial(&self, transition: Transition, at_once: bool) -> Result<Trial> {
        let start = wall_ns();
        if transition == Transition::Text {
            self.open("pay/receipt.html")?;
            pause(2_000);
            let end = wall_ns();
            return Ok(Trial {
                transition,
                start,
                focus: 0,
                typed_at_once: at_once,
                card_done: start,
                transition_at: start,
                end,
            });
        }
        self.open("pay/form.html")?;
        pause(1_300);
        let focus = wall_ns();
        self.click(CARD_FIELD)?;
        if !at_once {
            pause(400);
        }
        self.type_text(CARD)?;
        self.key("Tab")?;
        self.type_text(EXPIRY)?;
        self.key("Tab")?;
        self.type_text(CODE)?;
        let card_done = wall_ns();
        self.run(transition)?;
        Ok(Trial {
            transition,
            start,
            focus,
            typed_at_once: at_once,
            card_done,
            transition_at: card_done,
            end: wall_ns(),
        })
    }

    fn run(&self, transition: Transition) -> Result<()> {
        match transition {
            Transition::Tab => {
                self.key("Tab")?;
                self.type_text(STREET)?;
                // Past the card rule's 2-s tail: the held card fields then have region masks
                // of their own and the street beside them can be read.
                pause(4_000);
            }
            Transition::AddressBar => {
                self.key("ctrl+l")?;
                pause(1_500);
                self.key("Escape")?;
                self.click(BLANK)?;
                pause(1_200);
            }
            Transition::Scroll => {
                self.click(BLANK)?;
                self.key("End")?;
                pause(1_500);
                self.key("Home")?;
                pause(1_500);
            }
            Transition::Reload => {
                self.key("F5")?;
                pause(2_000);
            }
            Transition::Back => {
                self.open("checkout/done.html")?;
                pause(1_200);
                self.key("alt+Left")?;
                pause(2_000);
            }
            Transition::Window => {
                self.key("ctrl+n")?;
                pause(1_500);
                self.key("ctrl+w")?;
                pause(1_500);
            }
            Transition::Text => {}
        }
        Ok(())
    }
}
