//! The screen track's encoder on a thread of its own. x264 takes up to a few hundred
//! milliseconds for a 1080p frame on a busy machine; on the engine's thread that time held every
//! masking decision and control answer behind it. The engine now redacts a frame and hands it
//! over; the thread converts, encodes and muxes it, and flushes the segment's end while the
//! engine goes on with the next segment.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use vigil_capture::VideoFrame;

use crate::encoder_config::EncoderConfig;
use crate::screen_track::{ScreenOutput, ScreenTrack};
use crate::{MediaError, MediaErrorKind};

/// Frames waiting for the thread: enough to ride out a slow frame or two without holding the
/// engine. A longer backlog means the machine cannot keep up: the engine then waits (and
/// capture queues), as it did when it encoded itself.
const QUEUE: usize = 4;

enum Job {
    Frame(VideoFrame, i64),
    End(i64),
}

/// A running screen encoder.
pub(crate) struct ScreenThread {
    jobs: SyncSender<Job>,
    thread: JoinHandle<Result<Option<ScreenOutput>, MediaError>>,
}

/// A screen encoder told to finish; its output is ready once the thread has flushed.
pub(crate) struct EndingScreen {
    thread: JoinHandle<Result<Option<ScreenOutput>, MediaError>>,
}

fn thread_error(detail: &str) -> MediaError {
    MediaError::new(MediaErrorKind::Encode, detail)
}

impl ScreenThread {
    /// Starts a thread that opens the track (sized by its first frame) and encodes.
    pub(crate) fn start(config: EncoderConfig) -> Result<Self, MediaError> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("screen-encoder".into())
            .spawn(move || {
                let mut track: Option<ScreenTrack> = None;
                for job in queue {
                    match job {
                        Job::Frame(frame, pts_ms) => {
                            let open = match track.as_mut() {
                                Some(open) => open,
                                None => track.insert(ScreenTrack::new(
                                    &config,
                                    frame.width,
                                    frame.height,
                                )?),
                            };
                            open.push(&frame, pts_ms)?;
                        }
                        Job::End(end_ms) => return track.map(|t| t.finish(end_ms)).transpose(),
                    }
                }
                // Dropped without an end: the segment was abandoned (a failed session).
                Ok(None)
            })
            .map_err(|e| thread_error(&format!("screen encoder thread: {e}")))?;
        Ok(Self { jobs, thread })
    }

    /// Queues a frame (waits only while the queue is full). A thread that stopped on an error
    /// answers with that error.
    pub(crate) fn push(self, frame: VideoFrame, pts_ms: i64) -> Result<Self, MediaError> {
        match self.jobs.send(Job::Frame(frame, pts_ms)) {
            Ok(()) => Ok(self),
            Err(_) => Err(join(self.thread)
                .err()
                .unwrap_or_else(|| thread_error("the screen encoder stopped"))),
        }
    }

    /// Tells the thread the segment ends at `end_ms`.
    pub(crate) fn end(self, end_ms: i64) -> EndingScreen {
        // A thread that already stopped keeps its error for `wait`.
        let _ = self.jobs.send(Job::End(end_ms));
        EndingScreen {
            thread: self.thread,
        }
    }
}

impl EndingScreen {
    /// Whether the output is ready (`wait` will not block).
    pub(crate) fn is_ready(&self) -> bool {
        self.thread.is_finished()
    }

    /// The encoded track (`None`: no frame came).
    pub(crate) fn wait(self) -> Result<Option<ScreenOutput>, MediaError> {
        join(self.thread)
    }
}

fn join(
    thread: JoinHandle<Result<Option<ScreenOutput>, MediaError>>,
) -> Result<Option<ScreenOutput>, MediaError> {
    thread
        .join()
        .unwrap_or_else(|_| Err(thread_error("the screen encoder thread panicked")))
}
