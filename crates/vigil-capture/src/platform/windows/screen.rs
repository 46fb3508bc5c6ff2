//! Windows.Graphics.Capture of the primary monitor. The OS delivers frames only when the screen
//! changed, which gives the variable frame rate; the handler drops frames that arrive faster
//! than the configured rate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use windows_capture::capture::{Context, GraphicsCaptureApiHandler};
use windows_capture::frame::Frame;
use windows_capture::graphics_capture_api::InternalCaptureControl;
use windows_capture::monitor::Monitor;
use windows_capture::settings::{
    ColorFormat, CursorCaptureSettings, DirtyRegionSettings, DrawBorderSettings,
    MinimumUpdateIntervalSettings, SecondaryWindowSettings, Settings,
};

use crate::audio::sleep_unless_stopped;
use crate::{
    Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, PixelFormat, ScreenConfig,
    SourceEventKind, VideoFrame,
};

fn backend(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::new(CaptureErrorKind::BackendUnavailable, e.to_string())
}

pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    Monitor::primary().map(|_| ()).map_err(backend)
}

pub(crate) fn list_screens(_config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    let primary = Monitor::primary().ok().and_then(|m| m.device_name().ok());
    Monitor::enumerate()
        .map_err(backend)?
        .into_iter()
        .map(|m| {
            let name = m.device_name().map_err(backend)?;
            Ok(MonitorInfo {
                primary: primary.as_deref() == Some(name.as_str()),
                name,
                x: 0,
                y: 0,
                width: m.width().map_err(backend)?,
                height: m.height().map_err(backend)?,
            })
        })
        .collect()
}

struct Flags {
    clock: Clock,
    tx: Sender<Capture>,
    min_interval_ns: u64,
}

struct Handler {
    flags: Flags,
    last_pts: Option<u64>,
    scratch: Vec<u8>,
}

impl GraphicsCaptureApiHandler for Handler {
    type Flags = Flags;
    type Error = CaptureError;

    fn new(ctx: Context<Self::Flags>) -> Result<Self, Self::Error> {
        Ok(Self {
            flags: ctx.flags,
            last_pts: None,
            scratch: Vec::new(),
        })
    }

    fn on_frame_arrived(
        &mut self,
        frame: &mut Frame,
        control: InternalCaptureControl,
    ) -> Result<(), Self::Error> {
        let pts_ns = self.flags.clock.now_ns();
        if self
            .last_pts
            .is_some_and(|last| pts_ns - last < self.flags.min_interval_ns)
        {
            return Ok(());
        }
        self.last_pts = Some(pts_ns);
        let buffer = frame.buffer().map_err(backend)?;
        let (width, height) = (buffer.width(), buffer.height());
        let pixels = buffer.as_nopadding_buffer(&mut self.scratch).to_vec();
        let video = VideoFrame {
            pts_ns,
            width,
            height,
            stride: width as usize * 4,
            format: PixelFormat::Bgr0,
            data: Arc::new(pixels),
        };
        if self.flags.tx.send(Capture::Video(video)).is_err() {
            control.stop();
        }
        Ok(())
    }
}

pub(crate) fn run_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let started = Monitor::primary().map_err(backend).and_then(|monitor| {
            let settings = Settings::new(
                monitor,
                if config.draw_pointer {
                    CursorCaptureSettings::WithCursor
                } else {
                    CursorCaptureSettings::WithoutCursor
                },
                DrawBorderSettings::WithoutBorder,
                SecondaryWindowSettings::Default,
                MinimumUpdateIntervalSettings::Custom(Duration::from_millis(
                    1000 / config.fps.max(1) as u64,
                )),
                DirtyRegionSettings::Default,
                ColorFormat::Bgra8,
                Flags {
                    clock,
                    tx: tx.clone(),
                    min_interval_ns: 1_000_000_000 / config.fps.max(1) as u64,
                },
            );
            Handler::start_free_threaded(settings).map_err(backend)
        });
        match started {
            Ok(control) => {
                let _ = tx.send(Capture::event(
                    &clock,
                    "screen",
                    SourceEventKind::DeviceOpened,
                    "primary monitor".into(),
                ));
                while !stop.load(Ordering::SeqCst) && !control.is_finished() {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let _ = control.stop();
            }
            Err(e) => {
                let _ = tx.send(Capture::event(
                    &clock,
                    "screen",
                    SourceEventKind::Failed,
                    e.to_string(),
                ));
                sleep_unless_stopped(&stop, Duration::from_secs(1));
            }
        }
    }
}
