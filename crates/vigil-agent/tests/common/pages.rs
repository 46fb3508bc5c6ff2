//! The masking pages of `assets/pay` served over HTTP, and keyboard helpers for driving a
//! browser on the test desktop.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use super::xdotool;
use vigil_e2e::TestDesktop;

pub fn pay_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/pay")
        .canonicalize()
        .unwrap()
}

/// A static HTTP server over `assets/pay` on a free loopback port (Python's), reaped on drop.
pub struct PageServer {
    child: Child,
    pub port: u16,
}

impl PageServer {
    pub fn start(desk: &TestDesktop) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = desk
            .command("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .arg("--directory")
            .arg(pay_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, port }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
