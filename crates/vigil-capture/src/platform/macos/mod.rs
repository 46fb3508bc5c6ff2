//! macOS: Core Audio through cpal for the microphone and for the default output device (cpal
//! records it through a process tap on macOS 14.4+). Screen capture through ScreenCaptureKit is
//! not written yet: the screen source reports `Unsupported`, so the agent records voice only and
//! says why, instead of pretending to record the screen.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cpal::traits::DeviceTrait;
use crossbeam_channel::Sender;

use crate::{AudioRole, Capture, CaptureError, CaptureErrorKind, Clock, MonitorInfo, ScreenConfig};

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
        AudioRole::SystemAudio => device.default_output_config()?,
    };
    Ok(supported.config())
}

pub(crate) fn is_microphone(_id: &str) -> bool {
    true
}

fn unsupported() -> CaptureError {
    CaptureError::new(
        CaptureErrorKind::Unsupported,
        "screen capture on macOS (ScreenCaptureKit) is not implemented yet",
    )
}

pub(crate) fn check_screen(_config: &ScreenConfig) -> Result<(), CaptureError> {
    Err(unsupported())
}

pub(crate) fn list_screens(_config: &ScreenConfig) -> Result<Vec<MonitorInfo>, CaptureError> {
    Ok(Vec::new())
}

pub(crate) fn run_screen(
    _config: ScreenConfig,
    _clock: Clock,
    _tx: Sender<Capture>,
    _stop: Arc<AtomicBool>,
) {
}
