//! The masking pages of `assets/pay` served over HTTP, and keyboard helpers for driving a
//! browser on the test desktop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::xdotool;
use vigil_e2e::TestDesktop;

pub fn pay_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/pay")
        .canonicalize()
        .unwrap()
}

/// A static HTTP server over `assets/pay` on a free loopback port, reaped on drop.
pub fn pay_server(desk: &TestDesktop) -> vigil_e2e::PageServer {
    vigil_e2e::PageServer::start(desk, &pay_dir()).unwrap()
}

pub fn key(desk: &TestDesktop, keys: &str) {
    xdotool(desk, &["key", "--clearmodifiers", keys]);
}

pub fn type_text(desk: &TestDesktop, text: &str) {
    xdotool(desk, &["type", "--delay", "80", text]);
}

pub fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}
