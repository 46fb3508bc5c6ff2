//! A static web server over a folder on a free loopback port (Python's `http.server`), for
//! pages the browser extension must run in (extensions do not run on `file://` pages by
//! default). Stopped and reaped on drop.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::TestDesktop;

/// The running server.
pub struct PageServer {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl PageServer {
    /// Serves `dir` and returns once the port accepts connections (at most 5 s).
    pub fn start(desk: &TestDesktop, dir: &Path) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
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
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the page server")?;
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, port })
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
