//! The delay line: raw media waits here at least `delay` after capture before it may be
//! redacted and encoded, so a mask that starts at a trigger's timestamp also covers media
//! captured before the trigger was decided (brief §5).

use std::collections::VecDeque;

use vigil_capture::{AudioChunk, VideoFrame};

/// A time-ordered buffer of raw media.
pub struct DelayLine {
    delay_ns: u64,
    video: VecDeque<VideoFrame>,
    audio: VecDeque<AudioChunk>,
}

impl DelayLine {
    /// A delay line holding media for `delay_ns` nanoseconds.
    pub fn new(delay_ns: u64) -> Self {
        Self {
            delay_ns,
            video: VecDeque::new(),
            audio: VecDeque::new(),
        }
    }

    /// The configured delay.
    pub fn delay_ns(&self) -> u64 {
        self.delay_ns
    }

    /// Adds a frame.
    pub fn push_video(&mut self, frame: VideoFrame) {
        self.video.push_back(frame);
    }

    /// Adds a frame that replaces the newest one when both carry the same time (the pictures
    /// captured before a session began all stand for its first instant: the newest wins).
    pub fn replace_video_at_same_time(&mut self, frame: VideoFrame) {
        match self.video.back_mut() {
            Some(newest) if newest.pts_ns == frame.pts_ns => *newest = frame,
            _ => self.video.push_back(frame),
        }
    }

    /// Adds audio.
    pub fn push_audio(&mut self, chunk: AudioChunk) {
        self.audio.push_back(chunk);
    }

    /// The release watermark at `now_ns`: media captured at or before it may leave.
    pub fn watermark(&self, now_ns: u64) -> u64 {
        now_ns.saturating_sub(self.delay_ns)
    }

    /// Takes the frames captured at or before `watermark`, oldest first.
    pub fn release_video(&mut self, watermark: u64) -> Vec<VideoFrame> {
        let n = self
            .video
            .iter()
            .take_while(|f| f.pts_ns <= watermark)
            .count();
        self.video.drain(..n).collect()
    }

    /// Takes the audio captured at or before `watermark`, in arrival order.
    pub fn release_audio(&mut self, watermark: u64) -> Vec<AudioChunk> {
        let n = self
            .audio
            .iter()
            .take_while(|c| c.pts_ns <= watermark)
            .count();
        self.audio.drain(..n).collect()
    }

    /// Takes everything (at shutdown).
    pub fn drain_all(&mut self) -> (Vec<VideoFrame>, Vec<AudioChunk>) {
        (
            self.video.drain(..).collect(),
            self.audio.drain(..).collect(),
        )
    }

    /// Frames currently held (for memory accounting).
    pub fn held_frames(&self) -> usize {
        self.video.len()
    }
}
