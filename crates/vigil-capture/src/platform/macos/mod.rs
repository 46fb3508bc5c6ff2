//! macOS: Core Audio through cpal for the microphone and for the default output device (cpal
//! records it through a process tap on macOS 14.4+); ScreenCaptureKit for the screen: every
//! display (mirrors aside), each at its pixel size, composed into one picture of the desktop.

mod completion;
mod displays;
mod frame_output;
mod pixel_buffer;
mod screen;
mod streams;

use cpal::traits::DeviceTrait;

use crate::{AudioRole, CaptureError};

pub(crate) use screen::{check_screen, list_screens, run_screen};

/// macOS has no communications output role: that source runs only when configured.
pub(crate) const HAS_COMMUNICATIONS_DEVICE: bool = false;

pub(crate) fn resolve_audio_device(
    host: &cpal::Host,
    role: AudioRole,
    configured: Option<&str>,
) -> Result<(cpal::Device, String), CaptureError> {
    super::configured_or_default(host, role, configured)
}

pub(crate) fn stream_config(
    device: &cpal::Device,
    role: AudioRole,
) -> Result<cpal::StreamConfig, cpal::Error> {
    let supported = match role {
        AudioRole::Microphone => device.default_input_config()?,
        AudioRole::SystemAudio | AudioRole::Communications => device.default_output_config()?,
    };
    Ok(supported.config())
}

pub(crate) fn is_microphone(_id: &str) -> bool {
    true
}
