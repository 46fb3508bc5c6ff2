//! Audio sources on cpal: one supervised stream per role that follows the default device,
//! reopens after failures, and stamps samples on the session clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, StreamTrait};
use crossbeam_channel::Sender;

use crate::platform;
use crate::stoppable::sleep_unless_stopped;
use crate::{
    AudioChunk, AudioRole, Capture, CaptureError, CaptureErrorKind, Clock, SourceEventKind,
    SourceHandle,
};

/// Settings of one audio source.
#[derive(Debug, Clone)]
pub struct AudioSourceConfig {
    /// The track.
    pub role: AudioRole,
    /// A device id to use instead of following the default device.
    pub device: Option<String>,
}

/// How often the supervisor checks the stream and the default device.
const POLL: Duration = Duration::from_millis(250);
/// How often it asks the OS which device is the default.
const RESOLVE_EVERY: Duration = Duration::from_millis(1000);
/// Stamps closer than this to the running sample clock keep the stream continuous.
const STAMP_TOLERANCE_NS: u64 = 30_000_000;

/// Stamps chunks with the capture time of their first sample, on a running sample clock.
///
/// A chunk can only be delivered after it was captured, so `callback time − chunk length` is an
/// upper bound of its true start; audio servers deliver in bursts (a ring buffer wraps into a
/// full fragment and a few samples that wait for the next period), so single callbacks can be
/// late by a whole period. The stamper therefore keeps the sample clock, pulls it back at once
/// when it runs later than the bound allows (the device produced more than nominal), and moves
/// it forward only when every chunk of five seconds was late (samples were really lost, or
/// the device runs slow); the media stage then fills and reports the gap.
#[derive(Default)]
struct Stamper {
    next_pts: Option<u64>,
    /// Smallest lateness seen in the current window, and when the window began.
    window: Option<(u64, u64)>,
}

/// How long lateness must persist before the clock moves forward: long enough to ride out a
/// loaded machine's delayed deliveries, short enough to bound drift after a real loss.
const LATENESS_WINDOW_NS: u64 = 5_000_000_000;

impl Stamper {
    fn stamp(&mut self, now_ns: u64, frames: usize, rate: u32) -> u64 {
        let dur = frames as u64 * 1_000_000_000 / rate as u64;
        let bound = now_ns.saturating_sub(dur);
        let pts = match self.next_pts {
            Some(next) if next <= bound + STAMP_TOLERANCE_NS => {
                let lateness = bound.saturating_sub(next);
                let (since, least) = match self.window {
                    Some((since, least)) => (since, least.min(lateness)),
                    None => (now_ns, lateness),
                };
                if now_ns.saturating_sub(since) >= LATENESS_WINDOW_NS {
                    self.window = None;
                    if least > STAMP_TOLERANCE_NS {
                        next + least
                    } else {
                        next
                    }
                } else {
                    self.window = Some((since, least));
                    next
                }
            }
            _ => {
                self.window = None;
                bound
            }
        };
        self.next_pts = Some(pts + dur);
        pts
    }
}

fn event(clock: &Clock, role: AudioRole, kind: SourceEventKind, detail: String) -> Capture {
    Capture::event(clock, role.as_str(), kind, detail)
}

/// Starts an audio source on its own thread; it sends [`Capture::Audio`] and events to `tx`
/// until the handle is dropped. It never gives up: a missing device is retried and reported.
pub fn start_audio(
    config: AudioSourceConfig,
    clock: Clock,
    tx: Sender<Capture>,
) -> Result<SourceHandle, CaptureError> {
    let stop = Arc::new(AtomicBool::new(false));
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("capture-{}", config.role.as_str()))
        .spawn(move || run(config, clock, tx, thread_stop))
        .map_err(|e| CaptureError::new(CaptureErrorKind::Backend, e.to_string()))?;
    Ok(SourceHandle::new(stop, thread))
}

/// Runs one supervised audio source until `stop` is set.
fn run(config: AudioSourceConfig, clock: Clock, tx: Sender<Capture>, stop: Arc<AtomicBool>) {
    let role = config.role;
    let mut current: Option<String> = None;
    let mut last_error: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        // A fresh host (one audio-server connection) per stream: closing the connection is what
        // really ends a PulseAudio record stream (cpal 0.18.2 does not delete it on drop).
        let host = cpal::default_host();
        let (device, id) = match platform::resolve_audio_device(
            &host,
            role,
            config.device.as_deref(),
        ) {
            Ok(found) => found,
            Err(e) => {
                let msg = e.to_string();
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(source = role.as_str(), error = %msg, "audio device unavailable; retrying");
                    let _ = tx.send(event(&clock, role, SourceEventKind::Failed, msg.clone()));
                    last_error = Some(msg);
                }
                sleep_unless_stopped(&stop, Duration::from_secs(1));
                continue;
            }
        };
        if let Some(previous) = &current {
            if previous != &id {
                tracing::info!(source = role.as_str(), from = %previous, to = %id, "audio device changed");
                let _ = tx.send(event(
                    &clock,
                    role,
                    SourceEventKind::DeviceChanged,
                    format!("{previous} -> {id}"),
                ));
            }
        }
        if config.role == AudioRole::Communications && same_as_system_output(&host, &id) {
            // The communications output is the default output too: the system-audio source
            // already records it; a second stream would play the caller twice.
            if current.as_deref() != Some(id.as_str()) {
                tracing::info!(device = %id, "communications output is the default output");
            }
            current = Some(id);
            sleep_unless_stopped(&stop, RESOLVE_EVERY);
            continue;
        }
        current = Some(id.clone());
        match open_stream(&device, role, &clock, &tx) {
            Ok((stream, failed, active)) => {
                last_error = None;
                tracing::info!(source = role.as_str(), device = %id, "audio capture started");
                let _ = tx.send(event(
                    &clock,
                    role,
                    SourceEventKind::DeviceOpened,
                    id.clone(),
                ));
                watch(&host, &config, &id, &failed, &stop, &clock, &tx);
                // Nothing from the old device may follow once we moved on.
                active.store(false, Ordering::SeqCst);
                let _ = stream.pause();
                drop(stream);
            }
            Err(e) => {
                let msg = format!("{id}: {e}");
                if last_error.as_ref() != Some(&msg) {
                    tracing::warn!(source = role.as_str(), error = %msg, "audio stream failed to open");
                    let _ = tx.send(event(&clock, role, SourceEventKind::Failed, msg.clone()));
                    last_error = Some(msg);
                }
                sleep_unless_stopped(&stop, Duration::from_secs(1));
            }
        }
    }
}

/// Waits while the stream is healthy and the resolved device is still `id`.
fn watch(
    host: &cpal::Host,
    config: &AudioSourceConfig,
    id: &str,
    failed: &AtomicBool,
    stop: &AtomicBool,
    clock: &Clock,
    tx: &Sender<Capture>,
) {
    let mut last_resolve = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(POLL);
        if failed.load(Ordering::SeqCst) {
            let _ = tx.send(event(
                clock,
                config.role,
                SourceEventKind::Failed,
                format!("{id}: stream error"),
            ));
            return;
        }
        if last_resolve.elapsed() >= RESOLVE_EVERY {
            last_resolve = Instant::now();
            match platform::resolve_audio_device(host, config.role, config.device.as_deref()) {
                Ok((_, now_id))
                    if now_id == id
                        && !(config.role == AudioRole::Communications
                            && same_as_system_output(host, id)) => {}
                // Changed or gone: reopen (the outer loop reports which).
                _ => return,
            }
        }
    }
}

/// Whether `id` is the device the (unconfigured) system-audio source follows.
fn same_as_system_output(host: &cpal::Host, id: &str) -> bool {
    platform::resolve_audio_device(host, AudioRole::SystemAudio, None)
        .is_ok_and(|(_, system)| system == id)
}

fn open_stream(
    device: &cpal::Device,
    role: AudioRole,
    clock: &Clock,
    tx: &Sender<Capture>,
) -> Result<(cpal::Stream, Arc<AtomicBool>, Arc<AtomicBool>), cpal::Error> {
    let stream_config = platform::stream_config(device, role)?;
    let channels = stream_config.channels.max(1) as usize;
    let rate = stream_config.sample_rate;
    let failed = Arc::new(AtomicBool::new(false));
    let failed_cb = failed.clone();
    let active = Arc::new(AtomicBool::new(true));
    let active_cb = active.clone();
    let tx = tx.clone();
    let clock = *clock;
    let mut stamper = Stamper::default();
    let stream = device.build_input_stream::<f32, _, _>(
        stream_config,
        move |data: &[f32], _info| {
            if !active_cb.load(Ordering::SeqCst) {
                return;
            }
            let now = clock.now_ns();
            let samples: Vec<f32> = if channels == 1 {
                data.to_vec()
            } else {
                data.chunks(channels)
                    .map(|f| f.iter().sum::<f32>() / channels as f32)
                    .collect()
            };
            let pts = stamper.stamp(now, samples.len(), rate);
            tracing::trace!(
                source = role.as_str(),
                samples = samples.len(),
                pts,
                now,
                "audio chunk"
            );
            let _ = tx.send(Capture::Audio(AudioChunk {
                role,
                pts_ns: pts,
                sample_rate: rate,
                samples,
            }));
        },
        move |err| {
            tracing::warn!(error = %err, "audio stream error");
            failed_cb.store(true, Ordering::SeqCst);
        },
        Some(Duration::from_secs(5)),
    )?;
    stream.play()?;
    Ok((stream, failed, active))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_stay_continuous_through_jitter_and_resync_after_a_skip() {
        let mut s = Stamper::default();
        let rate = 16_000;
        let ms = 1_000_000;
        assert_eq!(s.stamp(1_000 * ms, 1600, rate), 900 * ms);
        // Callback 5 ms late: still continuous.
        assert_eq!(s.stamp(1_105 * ms, 1600, rate), 1_000 * ms);
        // Samples lost for 200 ms: every chunk of the next second is late; then the clock moves.
        let mut now = 1_400 * ms;
        let mut last = 0;
        for _ in 0..130 {
            last = s.stamp(now, 1600, rate);
            now += 100 * ms;
        }
        let truth = now - 200 * ms;
        assert_eq!(last, truth, "the clock follows once the lateness persisted");
    }

    /// Bursts as PulseAudio delivers them (a full fragment, then a few samples that wait for the
    /// next period) keep one continuous clock.
    #[test]
    fn bursty_delivery_keeps_a_continuous_clock() {
        let mut s = Stamper::default();
        let ms = 1_000_000u64;
        let mut expected = None;
        for k in 0..50u64 {
            let t = 1_000 * ms + k * 100 * ms;
            let small = (k % 10) as usize + 5;
            for (frames, now) in [(1600 - small, t), (small, t + 100 * ms)] {
                let pts = s.stamp(now, frames, 16_000);
                if let (Some(e), true) = (expected, k > 0) {
                    assert_eq!(pts, e, "chunk {k} jumped");
                }
                expected = Some(pts + frames as u64 * 1_000_000_000 / 16_000);
            }
        }
    }

    /// An hour of a device whose clock runs 0.1 % fast or slow against the system clock, with
    /// ±5 ms callback jitter: every stamp stays within 40 ms of the true capture time.
    #[test]
    fn drift_stays_within_40_ms_over_an_hour() {
        for real_rate in [16_016.0f64, 15_984.0] {
            let mut s = Stamper::default();
            let frames = 1600usize;
            let mut worst = 0u64;
            let mut produced = 0u64;
            for k in 0..(3600 * 10) {
                let true_start = (produced as f64 / real_rate * 1e9) as u64;
                produced += frames as u64;
                let true_end = (produced as f64 / real_rate * 1e9) as u64;
                let jitter = ((k * 7919) % 11) as u64 * 1_000_000; // 0..10 ms late
                let pts = s.stamp(true_end + jitter, frames, 16_000);
                worst = worst.max(pts.abs_diff(true_start));
            }
            assert!(
                worst <= 40_000_000,
                "worst error {} ms at {real_rate} Hz",
                worst / 1_000_000
            );
        }
    }
}
