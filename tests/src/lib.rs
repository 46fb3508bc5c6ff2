//! The test desktop of brief §8, started per test: its own Xvfb display (1920x1080), a D-Bus
//! session, and a private PulseAudio with a `caller` sink (its monitor is the system audio) and a
//! clocked virtual microphone (`mic`, remapped from the `micfeed` sink's monitor). Helpers make
//! and play speech and tones. Every process it starts is stopped and reaped on drop, also when
//! a test fails.
#![forbid(unsafe_code)]

pub mod bench_support;
pub mod chromium;
mod desktop;
pub mod pages;
pub mod vault;

pub use chromium::{start_chromium_with_extension, Chromium};
pub use desktop::{Player, TestDesktop};
pub use pages::PageServer;
pub use vault::TestVault;
