//! Waiting on a source's thread that a stop request cuts short: shared by the audio supervisor
//! and every OS's screen loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Sleeps for `total`, or less once `stop` is set (checked every 50 ms).
pub(crate) fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
