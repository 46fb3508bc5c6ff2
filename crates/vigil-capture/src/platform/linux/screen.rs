//! X11 screen capture: FFmpeg's x11grab grabs the whole root window (every monitor) through
//! MIT-SHM at the configured rate; frames identical to the previous one are dropped here, so the
//! encoder sees a variable frame rate. RandR geometry is polled: on a change the grabber is
//! reopened at the new size and the change is reported.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use ffmpeg_next as ffmpeg;
use x11rb::connection::Connection;
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xproto::ConnectionExt as _;

use crate::stoppable::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, PixelFormat, ScreenConfig,
    SourceEventKind, VideoFrame,
};

const GEOMETRY_EVERY: Duration = Duration::from_millis(500);

fn display_name(config: &ScreenConfig) -> Result<String, CaptureError> {
    config
        .display
        .clone()
        .or_else(|| std::env::var("DISPLAY").ok())
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            CaptureError::new(
                CaptureErrorKind::BackendUnavailable,
                "no X display (DISPLAY is not set)",
            )
        })
}

struct Display {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
}

impl Display {
    fn connect(name: &str) -> Result<Self, CaptureError> {
        let (conn, screen) = x11rb::connect(Some(name)).map_err(|e| {
            CaptureError::new(
                CaptureErrorKind::BackendUnavailable,
                format!("cannot open X display {name}: {e}"),
            )
        })?;
        let root = conn.setup().roots[screen].root;
        Ok(Self { conn, root })
    }

    fn size(&self) -> Result<(u32, u32), CaptureError> {
        let lost = |e: &dyn std::fmt::Display| {
            CaptureError::new(CaptureErrorKind::DeviceLost, e.to_string())
        };
        let geometry = self
            .conn
            .get_geometry(self.root)
            .map_err(|e| lost(&e))?
            .reply()
            .map_err(|e| lost(&e))?;
        Ok((geometry.width as u32, geometry.height as u32))
    }

    fn monitors(&self) -> Result<Vec<MonitorInfo>, CaptureError> {
        let failed =
            |e: &dyn std::fmt::Display| CaptureError::new(CaptureErrorKind::Backend, e.to_string());
        let reply = self
            .conn
            .randr_get_monitors(self.root, true)
            .map_err(|e| failed(&e))?
            .reply()
            .map_err(|e| failed(&e))?;
        let mut out = Vec::new();
        for m in reply.monitors {
            let name = self
                .conn
                .get_atom_name(m.name)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|r| String::from_utf8_lossy(&r.name).into_owned())
                .unwrap_or_else(|| format!("monitor-{}", m.name));
            out.push(MonitorInfo {
                name,
                x: m.x as i32,
                y: m.y as i32,
                width: m.width as u32,
                height: m.height as u32,
                primary: m.primary,
            });
        }
        if out.is_empty() {
            let (width, height) = self.size()?;
            out.push(MonitorInfo {
                name: "screen".into(),
                x: 0,
                y: 0,
                width,
                height,
                primary: true,
            });
        }
        Ok(out)
    }
}

pub(crate) fn check_screen(config: &ScreenConfig) -> Result<(), CaptureError> {
    let display = Display::connect(&display_name(config)?)?;
    display.size().map(|_| ())
}

pub(crate) fn list_screens(config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    Display::connect(&display_name(config)?)?.monitors()
}

fn open_grabber(
    display: &str,
    size: (u32, u32),
    config: &ScreenConfig,
) -> Result<ffmpeg::format::context::Input, CaptureError> {
    let backend = |e: &dyn std::fmt::Display| {
        CaptureError::new(CaptureErrorKind::Backend, format!("x11grab: {e}"))
    };
    ffmpeg::init().map_err(|e| backend(&e))?;
    // FFmpeg's own warnings (frame-rate probing) are noise in an agent's log.
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    let format = ffmpeg::device::input::video()
        .find(|f| f.name() == "x11grab")
        .ok_or_else(|| {
            CaptureError::new(
                CaptureErrorKind::Unsupported,
                "FFmpeg was built without x11grab",
            )
        })?;
    let mut options = ffmpeg::Dictionary::new();
    options.set("framerate", &config.fps.to_string());
    options.set("video_size", &format!("{}x{}", size.0, size.1));
    options.set("draw_mouse", if config.draw_pointer { "1" } else { "0" });
    match ffmpeg::format::open_with(display, &format, options).map_err(|e| backend(&e))? {
        ffmpeg::format::context::Context::Input(input) => Ok(input),
        ffmpeg::format::context::Context::Output(_) => Err(CaptureError::new(
            CaptureErrorKind::Backend,
            "x11grab opened as output",
        )),
    }
}

fn event(clock: &Clock, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, "screen", kind, detail)
}

/// The screen thread: (re)opens the grabber, sends changed frames, follows geometry changes.
pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    let mut reported_size: Option<(u32, u32)> = None;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        let attempt = display_name(&config).and_then(|name| {
            let display = Display::connect(&name)?;
            let size = display.size()?;
            let grabber = open_grabber(&name, size, &config)?;
            Ok((display, size, grabber))
        });
        let (display, size, mut grabber) = match attempt {
            Ok(opened) => opened,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(error = %msg, "screen capture unavailable; retrying");
                    let _ = tx.send(event(&clock, SourceEventKind::Failed, msg.clone()));
                    last_error = Some(msg);
                }
                sleep_unless_stopped(&stop, Duration::from_secs(1));
                continue;
            }
        };
        last_error = None;
        match reported_size {
            Some(old) if old != size => {
                tracing::info!(from = ?old, to = ?size, "screen geometry changed");
                let _ = tx.send(event(
                    &clock,
                    SourceEventKind::GeometryChanged,
                    format!("{}x{} -> {}x{}", old.0, old.1, size.0, size.1),
                ));
            }
            None => {
                let _ = tx.send(event(
                    &clock,
                    SourceEventKind::DeviceOpened,
                    format!("X11 root {}x{}", size.0, size.1),
                ));
            }
            _ => {}
        }
        reported_size = Some(size);
        if let Err(e) = grab_until_change(&mut grabber, &display, size, &clock, &tx, &stop) {
            let msg = e.to_string();
            tracing::warn!(error = %msg, "screen capture interrupted; reopening");
            let _ = tx.send(event(&clock, SourceEventKind::Failed, msg));
        }
    }
}

/// Grabs frames until stopped (Ok), the geometry changes (Ok) or the grabber fails (Err).
fn grab_until_change(
    grabber: &mut ffmpeg::format::context::Input,
    display: &Display,
    size: (u32, u32),
    clock: &Clock,
    tx: &Sender<Capture>,
    stop: &AtomicBool,
) -> Result<(), CaptureError> {
    let (width, height) = size;
    let stride = width as usize * 4;
    let mut previous: Option<Arc<Vec<u8>>> = None;
    let mut last_check = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if last_check.elapsed() >= GEOMETRY_EVERY {
            last_check = Instant::now();
            if display.size()? != size {
                return Ok(());
            }
        }
        // A fresh packet each time: av_read_frame does not release what a packet held.
        let mut packet = ffmpeg::Packet::empty();
        packet.read(grabber).map_err(|e| {
            CaptureError::new(CaptureErrorKind::DeviceLost, format!("x11grab read: {e}"))
        })?;
        let pts_ns = clock.now_ns();
        let Some(data) = packet.data() else { continue };
        if data.len() < stride * height as usize {
            // The root shrank under the grabber: reopen at the new size.
            return Ok(());
        }
        let data = &data[..stride * height as usize];
        // Variable frame rate: an unchanged screen costs one comparison, no encode.
        if previous.as_ref().is_some_and(|p| p.as_slice() == data) {
            continue;
        }
        let frame = Arc::new(data.to_vec());
        previous = Some(frame.clone());
        let video = VideoFrame {
            pts_ns,
            width,
            height,
            stride,
            format: PixelFormat::Bgr0,
            data: frame,
            // X11's root window starts at (0, 0): desktop and picture coordinates agree.
            origin: (0, 0),
        };
        if tx.send(Capture::Video(video)).is_err() {
            return Ok(());
        }
    }
    Ok(())
}
