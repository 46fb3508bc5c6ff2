//! Per-OS backends behind `cfg`, and the entry points that start the screen source and list
//! devices on whichever backend this build has (audio sources start in `audio`, which uses
//! the backend's device resolution). Each OS module provides the same functions:
//! `resolve_audio_device`, `stream_config`, `list_screens` and `run_screen`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait};
use crossbeam_channel::Sender;

use crate::{
    AudioRole, Capture, CaptureError, CaptureErrorKind, Clock, DeviceList, ScreenConfig,
    SourceHandle,
};

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "windows")]
mod windows;
#[cfg(target_os = "windows")]
use windows as os;

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as os;

pub(crate) use os::{resolve_audio_device, stream_config};

/// Whether the OS names a communications output of its own (Windows does), so that a
/// [`AudioRole::Communications`] source is worth running without configuration.
pub fn has_communications_device() -> bool {
    os::HAS_COMMUNICATIONS_DEVICE
}

/// Starts the screen source: every monitor of the desktop, as one image. Fails at once when no
/// display can be reached; after that, failures and geometry changes are retried and reported.
pub fn start_screen(
    config: ScreenConfig,
    clock: Clock,
    tx: Sender<Capture>,
) -> Result<SourceHandle, CaptureError> {
    os::check_screen(&config)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("capture-screen".into())
        .spawn(move || os::run_screen(config, clock, tx, thread_stop))
        .map_err(|e| CaptureError::new(CaptureErrorKind::Backend, e.to_string()))?;
    Ok(SourceHandle::new(stop, thread))
}

/// Lists microphones, outputs and monitors.
pub fn list_devices(screen: &ScreenConfig) -> Result<DeviceList, CaptureError> {
    let host = cpal::default_host();
    let default_in = host
        .default_input_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.id().to_string());
    let default_out = host
        .default_output_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.id().to_string());
    let mut list = DeviceList::default();
    let devices = host
        .devices()
        .map_err(|e| CaptureError::new(CaptureErrorKind::BackendUnavailable, e.to_string()))?;
    for device in devices {
        let Ok(id) = device.id() else { continue };
        let id = id.id().to_string();
        let name = device
            .description()
            .map(|d| d.name().to_string())
            .unwrap_or_else(|_| id.clone());
        if device.supports_output() {
            let is_default = default_out.as_deref() == Some(id.as_str());
            list.outputs.push((id.clone(), name.clone(), is_default));
        }
        if device.supports_input() && os::is_microphone(&id) {
            let is_default = default_in.as_deref() == Some(id.as_str());
            list.microphones.push((id, name, is_default));
        }
    }
    list.monitors = os::list_screens(screen)?;
    Ok(list)
}

/// Picks a device for a role when the OS has no special rule: the configured id, or the default.
#[allow(dead_code)] // each OS module uses the parts it needs
pub(crate) fn configured_or_default(
    host: &cpal::Host,
    role: AudioRole,
    configured: Option<&str>,
) -> Result<(cpal::Device, String), CaptureError> {
    let device = match configured {
        Some(want) => host
            .devices()
            .map_err(|e| CaptureError::new(CaptureErrorKind::BackendUnavailable, e.to_string()))?
            .find(|d| d.id().map(|i| i.id() == want).unwrap_or(false)),
        None => match role {
            AudioRole::Microphone => host.default_input_device(),
            AudioRole::SystemAudio | AudioRole::Communications => host.default_output_device(),
        },
    };
    let device = device.ok_or_else(|| {
        CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            format!(
                "no {} device{}",
                role.as_str(),
                configured
                    .map(|c| format!(" named {c}"))
                    .unwrap_or_default()
            ),
        )
    })?;
    let id = device
        .id()
        .map(|i| i.id().to_string())
        .map_err(|e| CaptureError::new(CaptureErrorKind::DeviceLost, e.to_string()))?;
    Ok((device, id))
}
