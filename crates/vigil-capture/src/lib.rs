//! Capture sources of the Vigil agent (brief §2): the microphone, the system audio and the screen,
//! each delivered on one channel and stamped by one monotonic [`Clock`].
//!
//! The traits and types live here; each OS has its backend in `platform/<os>` behind `cfg`
//! (the layout cpal uses). Sources restart themselves after device changes and report every
//! change or gap as a [`SourceEvent`], so the manifest never hides one.
#![deny(missing_docs)]
#![cfg_attr(
    not(any(target_os = "macos", target_os = "windows")),
    forbid(unsafe_code)
)]
// ScreenCaptureKit needs Objective-C calls, WASAPI and monitor geometry need COM and Win32 calls:
// only those macOS and Windows modules and functions allow unsafe, block by block.
#![cfg_attr(any(target_os = "macos", target_os = "windows"), deny(unsafe_code))]

mod audio;
mod canvas;
mod clock;
mod error;
mod platform;
mod stoppable;
mod types;

pub use audio::{start_audio, AudioSourceConfig};
pub use canvas::{DesktopCanvas, MonitorRect};
pub use clock::Clock;
pub use error::{CaptureError, CaptureErrorKind};
pub use platform::{has_communications_device, list_devices, start_screen};
pub use types::{
    AudioChunk, AudioRole, Capture, DeviceList, MonitorInfo, PixelFormat, ScreenConfig,
    SourceEvent, SourceEventKind, SourceHandle, VideoFrame,
};
