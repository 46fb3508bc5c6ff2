//! Live checks, ignored by default (CI runs no compositor, portal or PipeWire).
//!
//! The PipeWire half against any video source node, without a portal, e.g.:
//!
//! ```text
//! gst-launch-1.0 videotestsrc pattern=ball ! video/x-raw,format=BGRx,width=320,height=240 \
//!     ! pipewiresink mode=provide stream-properties="p,media.class=Video/Source"
//! VIGIL_PW_NODE=<its node id> cargo test -p vigil-capture --features wayland -- --ignored live_pipewire
//! ```
//!
//! The whole backend, in a Wayland session with xdg-desktop-portal, PipeWire and a session
//! manager (a headless sway with xdg-desktop-portal-wlr and `chooser_type=none` will do):
//! `cargo test -p vigil-capture --features wayland -- --ignored live_portal`.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::portal::PortalStream;
use super::{stream, Sink};
use crate::{Capture, Clock, ScreenConfig, SourceEventKind};

const FPS: u32 = 5;

#[test]
#[ignore = "needs a running PipeWire daemon with a video source; set VIGIL_PW_NODE"]
fn live_pipewire_capture() {
    let node: u32 = std::env::var("VIGIL_PW_NODE")
        .expect("VIGIL_PW_NODE")
        .parse()
        .expect("node id");
    let runtime_dir = std::env::var("XDG_RUNTIME_DIR").expect("XDG_RUNTIME_DIR");
    // The portal hands over a socket to a restricted PipeWire remote; the daemon's own one
    // behaves the same for a client.
    let socket = UnixStream::connect(format!("{runtime_dir}/pipewire-0")).expect("PipeWire socket");
    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let capture = std::thread::spawn(move || {
        let sink = Sink {
            clock: Clock::new(),
            tx,
            stop: thread_stop,
            reported: Rc::default(),
            opened: Rc::default(),
        };
        let target = PortalStream {
            node_id: node,
            position: None,
            size: None,
        };
        stream::capture(OwnedFd::from(socket), &[target], FPS, &sink).map(|_| ())
    });
    let seconds = 3;
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::SeqCst);
    capture.join().expect("capture thread").expect("capture");

    let captures: Vec<Capture> = rx.try_iter().collect();
    let Some(Capture::Event(opened)) = captures.first() else {
        panic!("no DeviceOpened first: {captures:?}");
    };
    assert_eq!(opened.kind, SourceEventKind::DeviceOpened, "{opened:?}");
    let frames: Vec<_> = captures
        .iter()
        .filter_map(|c| match c {
            Capture::Video(v) => Some(v),
            _ => None,
        })
        .collect();
    assert!(!frames.is_empty(), "no frame");
    for frame in &frames {
        assert_eq!(frame.stride, frame.width as usize * 4);
        assert_eq!(frame.data.len(), frame.stride * frame.height as usize);
    }
    // The negotiated cap, with slack for the first frame and timing.
    assert!(
        frames.len() as u64 <= (FPS as u64 + 1) * seconds + 2,
        "{} frames in {seconds} s",
        frames.len()
    );
    eprintln!(
        "{} frames of {}x{}, first pixel (B, G, R, x) {:?}; events: {:?}",
        frames.len(),
        frames[0].width,
        frames[0].height,
        &frames[0].data[..4],
        captures
            .iter()
            .filter(|c| matches!(c, Capture::Event(_)))
            .collect::<Vec<_>>()
    );
}

#[test]
#[ignore = "needs a Wayland session with xdg-desktop-portal and PipeWire"]
fn live_portal_capture() {
    let config = ScreenConfig {
        fps: FPS,
        draw_pointer: true,
        display: None,
    };
    super::check_screen(&config).expect("check_screen");
    let monitors = super::list_screens(&config).expect("list_screens");
    eprintln!("monitors: {monitors:?}");
    assert!(!monitors.is_empty());

    let (tx, rx) = crossbeam_channel::unbounded();
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let screen =
        std::thread::spawn(move || super::run_screen(config, Clock::new(), tx, thread_stop));
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    screen.join().expect("screen thread");

    let captures: Vec<Capture> = rx.try_iter().collect();
    let events: Vec<_> = captures
        .iter()
        .filter_map(|c| match c {
            Capture::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    let frames = captures.len() - events.len();
    eprintln!("{frames} frames; events: {events:?}");
    assert!(
        events
            .iter()
            .any(|e| e.kind == SourceEventKind::DeviceOpened),
        "no DeviceOpened"
    );
    assert!(frames > 0, "no frame");
}
