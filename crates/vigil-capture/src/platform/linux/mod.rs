//! Linux: PulseAudio (or PipeWire's pulse server) through cpal for audio, X11 through FFmpeg's
//! x11grab (MIT-SHM) for the screen, RandR for geometry.

mod screen;

use cpal::traits::{DeviceTrait, HostTrait};

use crate::{AudioRole, CaptureError, CaptureErrorKind};

pub(crate) use screen::{check_screen, list_screens, run_screen};

/// Voice is captured mono at 16 kHz, the rate it is encoded at; the server resamples and downmixes.
const SAMPLE_RATE: u32 = 16_000;
/// 100 ms callbacks: without a fixed size, monitor sources arrive in ~2 s chunks; smaller ones
/// cost wake-ups for nothing (the delay line waits longer anyway).
const BUFFER_FRAMES: u32 = 1600;

/// The microphone is the configured or default source; the system audio is the monitor of the
/// configured or default sink (what the softphone plays).
pub(crate) fn resolve_audio_device(
    host: &cpal::Host,
    role: AudioRole,
    configured: Option<&str>,
) -> Result<(cpal::Device, String), CaptureError> {
    match role {
        AudioRole::Microphone => super::configured_or_default(host, role, configured),
        AudioRole::SystemAudio => {
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
