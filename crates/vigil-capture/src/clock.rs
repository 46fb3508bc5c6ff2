//! The one monotonic clock that stamps every frame and every sample of a session.

use std::time::{Duration, Instant, SystemTime};

/// A monotonic clock with a fixed origin, plus the wall time at that origin so that monotonic
/// stamps can be shown as wall time. Cheap to clone; all clones share the origin.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
    wall_origin: SystemTime,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            wall_origin: SystemTime::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// The wall time of a monotonic stamp.
    pub fn wall_at(&self, mono_ns: u64) -> SystemTime {
        self.wall_origin + Duration::from_nanos(mono_ns)
    }
}
