//! The recording engine: one session from start to a clean stop.

mod decisions;
mod error;
mod heartbeat;
mod session;
mod sources;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use error::RecordError;
pub use session::RecordSummary;
use session::{RecordingSession, Step};

use crate::options::RecordOptions;

/// Records one session until `stop` is set or the duration has passed, then finishes the segment
/// in progress cleanly.
pub fn record(options: RecordOptions, stop: Arc<AtomicBool>) -> Result<RecordSummary, RecordError> {
    let mut session = RecordingSession::start(options, stop)?;
    while session.step() == Step::Recording {}
    session.finish()
}
