//! What sources deliver.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Pixel layout of a captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 4 bytes a pixel: blue, green, red, unused (X11 and Windows native order).
    Bgr0,
}

/// One captured screen image.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    /// Capture time on the session clock.
    pub pts_ns: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes per row.
    pub stride: usize,
    /// Pixel layout.
    pub format: PixelFormat,
    /// The pixels, shared so that the delay line and encoder avoid copies.
    pub data: Arc<Vec<u8>>,
    /// Desktop coordinates of the picture's top-left pixel: the leftmost, topmost monitor's
    /// corner, negative when a monitor sits left of or above the primary (Windows, macOS,
    /// Wayland). Triggers report rectangles in desktop coordinates; redaction subtracts this.
    pub origin: (i32, i32),
}

/// A run of audio samples: mono `f32`, with the capture time of the first sample.
#[derive(Debug, Clone)]
pub struct AudioChunk {
    /// Which track it belongs to.
    pub role: AudioRole,
    /// Capture time of the first sample on the session clock.
    pub pts_ns: u64,
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
}

/// Kinds of source events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceEventKind {
    /// The source (re)opened a device; detail names it.
    DeviceOpened,
    /// The device changed (default switched, unplugged); the source moves to another.
    DeviceChanged,
    /// The screen geometry changed (resolution, monitors).
    GeometryChanged,
    /// The source failed; it will retry.
    Failed,
}

/// Something that happened to a source, stamped on the session clock.
#[derive(Debug, Clone)]
pub struct SourceEvent {
    /// When, on the session clock.
    pub at_ns: u64,
    /// The source: `screen`, `microphone` or `system_audio`.
    pub source: &'static str,
    /// What happened.
    pub kind: SourceEventKind,
    /// Device names or geometry; never media or secrets.
    pub detail: String,
}

/// Everything a source sends.
#[derive(Debug, Clone)]
pub enum Capture {
    /// A screen frame (only changed frames are sent: variable frame rate).
    Video(VideoFrame),
    /// Audio samples.
    Audio(AudioChunk),
    /// A device change, gap or failure.
    Event(SourceEvent),
}

impl Capture {
    /// An event of `source`, stamped now on the session clock.
    pub(crate) fn event(
        clock: &crate::Clock,
        source: &'static str,
        kind: SourceEventKind,
        detail: String,
    ) -> Self {
        Capture::Event(SourceEvent {
            at_ns: clock.now_ns(),
            source,
            kind,
            detail,
        })
    }
}

/// Screen capture settings.
#[derive(Debug, Clone)]
pub struct ScreenConfig {
    /// Frames per second to grab.
    pub fps: u32,
    /// Draw the mouse pointer into frames.
    pub draw_pointer: bool,
    /// Display to capture (X11 display name on Linux; `None` = the session's).
    pub display: Option<String>,
}

/// A monitor (or screen) the agent can capture.
#[derive(Debug, Clone)]
pub struct MonitorInfo {
    /// OS name of the monitor.
    pub name: String,
    /// Left edge in the virtual desktop.
    pub x: i32,
    /// Top edge in the virtual desktop.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Whether it is the primary monitor.
    pub primary: bool,
}

/// Devices as `vigil-agent devices` lists them.
#[derive(Debug, Clone, Default)]
pub struct DeviceList {
    /// Microphones (id, description, is default).
    pub microphones: Vec<(String, String, bool)>,
    /// Outputs whose audio can be captured (id, description, is default).
    pub outputs: Vec<(String, String, bool)>,
    /// Monitors.
    pub monitors: Vec<MonitorInfo>,
}

/// A running source; dropping it (or calling [`SourceHandle::stop`]) stops it and joins its thread.
pub struct SourceHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SourceHandle {
    pub(crate) fn new(stop: Arc<AtomicBool>, thread: JoinHandle<()>) -> Self {
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the source and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Which voice track a source feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioRole {
    /// The agent's microphone.
    Microphone,
    /// What the computer plays: the caller, on a softphone.
    SystemAudio,
    /// A second output softphones play calls on (Windows' communications device, or one
    /// configured): mixed into the system-audio track.
    Communications,
}

impl AudioRole {
    /// The source name used in manifests and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AudioRole::Microphone => "microphone",
            AudioRole::SystemAudio => "system_audio",
            AudioRole::Communications => "communications",
        }
    }

    /// The voice track a role feeds: communications audio is part of the system track.
    pub fn track(self) -> AudioRole {
        match self {
            AudioRole::Communications => AudioRole::SystemAudio,
            role => role,
        }
    }
}
