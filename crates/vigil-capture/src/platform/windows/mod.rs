//! Windows: WASAPI through cpal for the microphone and, as loopback, for two outputs: the
//! default (console) render device for the system audio, and the default *communications* render
//! device, where softphones play calls (found with the MMDevice API, see [`communications`]).
//! Windows.Graphics.Capture (windows-capture) records every monitor, painted into one image of
//! the virtual desktop (see [`screen`]).
//!
//! COM and Win32 calls are unsafe in the `windows` crate: only the functions that make them allow
//! `unsafe_code`, and each block says why it is sound.

mod communications;
mod monitors;
mod screen;

use cpal::traits::DeviceTrait;

use crate::{AudioRole, CaptureError};

pub(crate) use screen::{check_screen, list_screens, run_screen};

/// Windows names a default communications render endpoint (eCommunications).
pub(crate) const HAS_COMMUNICATIONS_DEVICE: bool = true;

/// The microphone is the configured or default capture device; the system audio is a loopback
/// stream on the configured or default render device (cpal opens input streams on render
/// devices as WASAPI loopback); the communications source, unless configured, follows the
/// default communications render endpoint.
pub(crate) fn resolve_audio_device(
    host: &cpal::Host,
    role: AudioRole,
    configured: Option<&str>,
) -> Result<(cpal::Device, String), CaptureError> {
    match (role, configured) {
        (AudioRole::Communications, None) => communications::communications_render_device(host),
        _ => super::configured_or_default(host, role, configured),
    }
}

/// WASAPI shared mode runs at the device's mix format; the media stage resamples.
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

/// Every WASAPI capture endpoint is a microphone (line-ins included).
pub(crate) fn is_microphone(_id: &str) -> bool {
    true
}
