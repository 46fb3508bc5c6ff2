//! Linux: PulseAudio (or PipeWire's pulse server) through cpal for audio, X11 through FFmpeg's
//! x11grab (MIT-SHM) for the screen, RandR for geometry. With the `wayland` feature, a Wayland
//! session without X display uses the ScreenCast portal and PipeWire instead.

mod screen;
#[cfg(feature = "wayland")]
mod wayland;

use cpal::traits::{DeviceTrait, HostTrait};

use crate::{AudioRole, CaptureError, CaptureErrorKind};

#[cfg(not(feature = "wayland"))]
pub(crate) use screen::{check_screen, list_screens, run_screen};

/// Wayland only when nothing names an X display: an X display (configured, or Xwayland's
/// `$DISPLAY`) keeps the X11 backend, which needs no permission dialog.
#[cfg(feature = "wayland")]
fn use_wayland(config: &crate::ScreenConfig) -> bool {
    let named = |v: Option<&str>| v.is_some_and(|v| !v.is_empty());
    !named(config.display.as_deref())
        && !named(std::env::var("DISPLAY").ok().as_deref())
        && named(std::env::var("WAYLAND_DISPLAY").ok().as_deref())
}

#[cfg(feature = "wayland")]
pub(crate) fn check_screen(config: &crate::ScreenConfig) -> Result<(), CaptureError> {
    if use_wayland(config) {
        wayland::check_screen(config)
    } else {
        screen::check_screen(config)
    }
}

#[cfg(feature = "wayland")]
pub(crate) fn list_screens(
    config: &crate::ScreenConfig,
) -> Result<Vec<crate::MonitorInfo>, CaptureError> {
    if use_wayland(config) {
        wayland::list_screens(config)
    } else {
        screen::list_screens(config)
    }
}

#[cfg(feature = "wayland")]
pub(crate) fn run_screen(
    config: crate::ScreenConfig,
    clock: crate::Clock,
    tx: crossbeam_channel::Sender<crate::Capture>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    if use_wayland(&config) {
        wayland::run_screen(config, clock, tx, stop)
    } else {
        screen::run_screen(config, clock, tx, stop)
    }
}

/// Voice is captured mono at 16 kHz, the rate it is encoded at; the server resamples and downmixes.
const SAMPLE_RATE: u32 = 16_000;
/// 200 ms callbacks. cpal makes the fragment the record stream's whole server-side buffer
/// (`maxlength`): a client that reads later than that under load loses samples, so the
/// fragment is as long as the delay line allows (it must arrive well within its 600 ms).
/// Without a fixed size, monitor sources arrive in ~2 s chunks.
const BUFFER_FRAMES: u32 = 3200;

/// PulseAudio has no communications output role: that source runs only when configured.
pub(crate) const HAS_COMMUNICATIONS_DEVICE: bool = false;

/// The microphone is the configured or default source; the system audio is the monitor of the
/// configured or default sink (what the softphone plays), and so is the communications output.
pub(crate) fn resolve_audio_device(
    host: &cpal::Host,
    role: AudioRole,
    configured: Option<&str>,
) -> Result<(cpal::Device, String), CaptureError> {
    match role {
        AudioRole::Microphone => super::configured_or_default(host, role, configured),
        // Linux has no communications role: that source runs only when configured.
        AudioRole::SystemAudio | AudioRole::Communications => {
            let sink = match configured {
                Some(c) => c.trim_end_matches(".monitor").to_string(),
                None => host
                    .default_output_device()
                    .and_then(|d| d.id().ok())
                    .map(|i| i.id().to_string())
                    .ok_or_else(|| {
                        CaptureError::new(CaptureErrorKind::DeviceNotFound, "no default output")
                    })?,
            };
            super::configured_or_default(host, role, Some(&format!("{sink}.monitor")))
        }
    }
}

pub(crate) fn stream_config(
    _device: &cpal::Device,
    _role: AudioRole,
) -> Result<cpal::StreamConfig, cpal::Error> {
    Ok(cpal::StreamConfig {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        buffer_size: cpal::BufferSize::Fixed(BUFFER_FRAMES),
    })
}

/// Monitor sources are outputs, not microphones.
pub(crate) fn is_microphone(id: &str) -> bool {
    !id.ends_with(".monitor")
}
