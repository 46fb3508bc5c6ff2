//! The segmenter: captured media → delay line → redaction → encoders, cut into N-second
//! segments on the session clock. Segment k covers [origin + k·N, origin + (k+1)·N); one
//! segment's end is the next one's start, and each starts with a keyframe (the last frame is
//! repeated at the boundary when the screen did not change).

use vigil_capture::{AudioRole, Capture, SourceEvent, SourceEventKind, VideoFrame};
use vigil_proto::{CaptureEvent, CaptureEventKind, MaskedSpan};

use crate::audio_timeline::{ns_to_index, AudioTimeline};
use std::collections::VecDeque;

use crate::encoder::{EncodedSegment, PendingMedia, SegmentEncoder, VoiceSources};
use crate::EncoderConfig;
use crate::{DelayLine, MaskTimelineHandle, MediaError};

/// Segmenter settings.
#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    /// Segment length in nanoseconds.
    pub segment_ns: u64,
    /// How long raw media waits before encoding.
    pub delay_ns: u64,
    /// Encoder settings.
    pub encoder: EncoderConfig,
    /// What the voice tracks record, for the manifest.
    pub voice_sources: VoiceSources,
}

/// A segment ready for sealing.
pub struct FinishedSegment {
    /// Sequence number in the session, from 1.
    pub sequence: u64,
    /// Start on the session clock.
    pub start_ns: u64,
    /// End on the session clock (exclusive).
    pub end_ns: u64,
    /// The media, in memory.
    pub media: EncodedSegment,
    /// Device changes, failures and gaps during the segment.
    pub events: Vec<CaptureEvent>,
    /// Mask spans overlapping the segment, clipped to it.
    pub masked: Vec<MaskedSpan>,
    /// Whether this is the session's last segment.
    pub last: bool,
}

/// A closed segment whose screen track may still be flushing on its encoder's thread.
struct ClosingSegment {
    sequence: u64,
    start_ns: u64,
    end_ns: u64,
    media: PendingMedia,
    events: Vec<CaptureEvent>,
    masked: Vec<MaskedSpan>,
    last: bool,
}

impl ClosingSegment {
    fn finished(self) -> Result<FinishedSegment, MediaError> {
        Ok(FinishedSegment {
            sequence: self.sequence,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            media: self.media.wait()?,
            events: self.events,
            masked: self.masked,
            last: self.last,
        })
    }
}

/// The voice tracks in container order.
const ROLES: [AudioRole; 2] = [AudioRole::Microphone, AudioRole::SystemAudio];
/// The system track's index in [`ROLES`].
const SYSTEM_TRACK: usize = 1;
/// How long the system track waits for a silent communications source before it stops
/// waiting: the source idles when the communications output is the default output.
const COMMUNICATIONS_WAIT_SAMPLES: u64 = crate::VOICE_RATE as u64;

/// Drives the media stage of one recording session.
pub struct Segmenter {
    config: SegmenterConfig,
    origin_ns: u64,
    delay: DelayLine,
    mask: MaskTimelineHandle,
    audio: [AudioTimeline; 2],
    /// A second output's loopback, mixed into the system track.
    communications: AudioTimeline,
    encoder: SegmentEncoder,
    sequence: u64,
    start_ns: u64,
    last_frame: Option<VideoFrame>,
    events: Vec<CaptureEvent>,
    /// Periods the screen recording was switched off (by policy): no picture is repeated into
    /// them, so segments inside one carry voice only.
    screen_off: Vec<(u64, Option<u64>)>,
    /// A new segment length, taken at the next boundary (policy).
    next_segment_ns: Option<u64>,
    /// Closed segments, oldest first, handed out once their screen is encoded.
    closing: VecDeque<ClosingSegment>,
}

fn event_kind(kind: SourceEventKind) -> CaptureEventKind {
    match kind {
        SourceEventKind::DeviceOpened => CaptureEventKind::SourceStarted,
        SourceEventKind::DeviceChanged => CaptureEventKind::DeviceChanged,
        SourceEventKind::GeometryChanged => CaptureEventKind::ScreenGeometryChanged,
        SourceEventKind::Failed => CaptureEventKind::SourceFailed,
    }
}

impl Segmenter {
    /// A session starting at `origin_ns` on the session clock.
    pub fn new(config: SegmenterConfig, origin_ns: u64) -> Result<Self, MediaError> {
        let encoder =
            SegmentEncoder::new(config.encoder.clone(), &config.voice_sources, origin_ns)?;
        Ok(Self {
            delay: DelayLine::new(config.delay_ns),
            config,
            origin_ns,
            mask: MaskTimelineHandle::default(),
            audio: [AudioTimeline::new(origin_ns), AudioTimeline::new(origin_ns)],
            communications: AudioTimeline::new(origin_ns),
            encoder,
            sequence: 1,
            start_ns: origin_ns,
            last_frame: None,
            events: Vec::new(),
            screen_off: Vec::new(),
            next_segment_ns: None,
            closing: VecDeque::new(),
        })
    }

    /// A handle to the mask timeline, for the masking stage to add spans to.
    pub fn mask_timeline(&self) -> MaskTimelineHandle {
        self.mask.clone()
    }

    /// Accepts captured media or a source event.
    pub fn push(&mut self, capture: Capture) {
        match capture {
            // A frame grabbed as the source was being stopped belongs to no one.
            Capture::Video(frame) if self.is_screen_off(frame.pts_ns) => {}
            // Captured while the session was starting: what the screen shows at its start.
            // Only the newest such picture is kept, at the origin (each earlier one would get
            // a made-up time of its own, a millisecond apart, in front of it).
            Capture::Video(mut frame) if frame.pts_ns < self.origin_ns => {
                frame.pts_ns = self.origin_ns;
                self.delay.replace_video_at_same_time(frame);
            }
            Capture::Video(frame) => self.delay.push_video(frame),
            Capture::Audio(chunk) => self.delay.push_audio(chunk),
            Capture::Event(SourceEvent {
                at_ns,
                source,
                kind,
                detail,
            }) => self.events.push(CaptureEvent {
                at_ns,
                until_ns: None,
                source: source.to_string(),
                kind: event_kind(kind),
                detail,
            }),
        }
    }

    /// The screen recording was switched off at `at_ns` (its source already stopped): frames
    /// captured before still go out, nothing of the screen is shown after it.
    pub fn screen_off(&mut self, at_ns: u64, detail: String) {
        if self.screen_off.last().is_some_and(|(_, to)| to.is_none()) {
            return;
        }
        self.screen_off.push((at_ns, None));
        self.events.push(CaptureEvent {
            at_ns,
            until_ns: None,
            source: "screen".into(),
            kind: CaptureEventKind::SourceStopped,
            detail,
        });
    }

    /// Segments after the current one last `segment_ns` (the current one keeps its end).
    pub fn set_segment_length(&mut self, segment_ns: u64) {
        if segment_ns > 0 && segment_ns != self.config.segment_ns {
            self.next_segment_ns = Some(segment_ns);
        }
    }

    /// The screen recording was switched back on at `at_ns`.
    pub fn screen_on(&mut self, at_ns: u64) {
        if let Some((_, to @ None)) = self.screen_off.last_mut() {
            *to = Some(at_ns);
        }
    }

    fn is_screen_off(&self, at_ns: u64) -> bool {
        self.screen_off
            .iter()
            .any(|(from, to)| at_ns >= *from && to.is_none_or(|to| at_ns < to))
    }

    /// Encodes what has waited long enough; returns the segments completed by `now_ns` whose
    /// screen track has been encoded (the rest come with a later call, in order).
    pub fn tick(&mut self, now_ns: u64) -> Result<Vec<FinishedSegment>, MediaError> {
        self.tick_with(now_ns, &mut || {})
    }

    /// [`Segmenter::tick`], calling `between` before each frame it encodes (the mask timeline
    /// unlocked): masking decisions made there apply to the frames still to come, and wait for
    /// one frame's encoding at most, not for a whole backlog.
    pub fn tick_with(
        &mut self,
        now_ns: u64,
        between: &mut dyn FnMut(),
    ) -> Result<Vec<FinishedSegment>, MediaError> {
        let watermark = self.delay.watermark(now_ns);
        self.process_until(watermark, false, between)
    }

    /// Stops the session at `now_ns`: everything captured is encoded, the last segment ends there.
    pub fn finish(mut self, now_ns: u64) -> Result<Vec<FinishedSegment>, MediaError> {
        let end = now_ns.max(self.start_ns + 1);
        self.process_until(end, true, &mut || {})?;
        let (video, audio) = self.delay.drain_all();
        self.place_audio(audio);
        for frame in video.into_iter().filter(|f| f.pts_ns < end) {
            self.encode_frame(frame)?;
        }
        self.close_segment(end, true)?;
        self.closing
            .drain(..)
            .map(ClosingSegment::finished)
            .collect()
    }

    /// The closed segments at the front whose screen track is encoded.
    fn take_ready(&mut self) -> Result<Vec<FinishedSegment>, MediaError> {
        let mut ready = Vec::new();
        while self.closing.front().is_some_and(|c| c.media.is_ready()) {
            let closed = self.closing.pop_front().expect("front checked");
            ready.push(closed.finished()?);
        }
        Ok(ready)
    }

    fn place_audio(&mut self, chunks: Vec<vigil_capture::AudioChunk>) {
        for mut chunk in chunks {
            // A chunk released by its first sample's time carries later samples with it.
            let rate = u64::from(chunk.sample_rate.max(1));
            let end_ns = chunk.pts_ns + chunk.samples.len() as u64 * 1_000_000_000 / rate;
            {
                let mut mask = self.mask.lock();
                mask.mark_applied_until(end_ns);
                mask.redact_samples(chunk.pts_ns, chunk.sample_rate, &mut chunk.samples);
            }
            let timeline = match chunk.role {
                AudioRole::Communications => &mut self.communications,
                role => {
                    let track = ROLES.iter().position(|r| *r == role).unwrap_or(0);
                    &mut self.audio[track]
                }
            };
            timeline.push(chunk.pts_ns, chunk.sample_rate, &chunk.samples);
        }
    }

    fn process_until(
        &mut self,
        watermark: u64,
        stopping: bool,
        between: &mut dyn FnMut(),
    ) -> Result<Vec<FinishedSegment>, MediaError> {
        // From here on, media up to the watermark is redacted as the timeline stands now.
        self.mask.lock().mark_applied_until(watermark);
        let audio = self.delay.release_audio(watermark);
        self.place_audio(audio);
        for frame in self.delay.release_video(watermark) {
            between();
            while frame.pts_ns >= self.start_ns + self.config.segment_ns {
                let end = self.start_ns + self.config.segment_ns;
                self.close_segment(end, false)?;
            }
            self.encode_frame(frame)?;
        }
        loop {
            let end = self.start_ns + self.config.segment_ns;
            self.fill_mask_edges(watermark.min(end))?;
            if watermark < end || (stopping && watermark == end) {
                break;
            }
            self.close_segment(end, false)?;
        }
        self.feed_audio(self.start_ns + self.config.segment_ns)?;
        self.take_ready()
    }

    /// Encodes a captured frame as the mask timeline shows it; keeps it unredacted, so that the
    /// picture can be shown again when a mask ends.
    fn encode_frame(&mut self, frame: VideoFrame) -> Result<(), MediaError> {
        self.fill_mask_edges(frame.pts_ns)?;
        let mut shown = frame.clone();
        let masked = self.mask.lock().redact_frame(&mut shown);
        tracing::trace!(pts_ns = frame.pts_ns, masked, "frame encoded");
        self.encoder.push_video(shown)?;
        self.last_frame = Some(frame);
        Ok(())
    }

    /// With a variable frame rate the previous picture stays on screen until the next frame
    /// changes it: at each start or end of a screen mask before `before_ns`, the last picture
    /// is encoded again as the timeline shows it then (masked at a start; visible again at an
    /// end, even when nothing on screen changed since).
    fn fill_mask_edges(&mut self, before_ns: u64) -> Result<(), MediaError> {
        while let Some(last) = &self.last_frame {
            let Some(edge) = self.mask.lock().screen_edge_between(last.pts_ns, before_ns) else {
                break;
            };
            if self.is_screen_off(edge) {
                // Nothing is shown while the screen is off; the picture comes back with the
                // first frame after it.
                self.last_frame = None;
                break;
            }
            let mut raw = last.clone();
            raw.pts_ns = edge;
            let mut shown = raw.clone();
            self.mask.lock().redact_frame(&mut shown);
            self.encoder.push_video(shown)?;
            self.last_frame = Some(raw);
        }
        Ok(())
    }

    /// Hands the voice samples available before `until_ns` to the encoder.
    fn feed_audio(&mut self, until_ns: u64) -> Result<(), MediaError> {
        let until = ns_to_index(self.origin_ns, until_ns);
        for track in 0..ROLES.len() {
            let mut limit = until;
            if track == SYSTEM_TRACK {
                // While the communications source delivers, the system track advances only as
                // far as both sources have placed samples, so the mix has no holes.
                let comms = &self.communications;
                if comms.received_until() + COMMUNICATIONS_WAIT_SAMPLES
                    > self.audio[track].taken_until()
                {
                    limit = limit.min(comms.placed_until());
                }
            }
            let (first, mut samples) = self.audio[track].take_until(limit);
            if track == SYSTEM_TRACK {
                self.communications.mix_into(first, &mut samples);
            }
            if !samples.is_empty() {
                self.encoder.push_audio(track, &samples)?;
            }
        }
        Ok(())
    }

    /// Closes the segment at `end_ns`; it is handed out once its screen track is encoded.
    fn close_segment(&mut self, end_ns: u64, last: bool) -> Result<(), MediaError> {
        // The communications source's silences are not gaps: the system track has its own.
        self.communications.settle_until(end_ns);
        self.communications.take_gaps();
        for (timeline, role) in self.audio.iter_mut().zip(ROLES) {
            timeline.settle_until(end_ns);
            for (from, to) in timeline.take_gaps() {
                self.events.push(CaptureEvent {
                    at_ns: from,
                    until_ns: Some(to),
                    source: role.as_str().to_string(),
                    kind: CaptureEventKind::Gap,
                    detail: format!(
                        "no audio for {} ms; silence inserted",
                        (to - from) / 1_000_000
                    ),
                });
            }
        }
        self.feed_audio(end_ns)?;
        let next_start = end_ns;
        // The new segment's screen encoder opens with its first frame, after the old one is done.
        let replacement = SegmentEncoder::new(
            self.config.encoder.clone(),
            &self.config.voice_sources,
            next_start,
        )?;
        let encoder = std::mem::replace(&mut self.encoder, replacement);
        let media = encoder.finish(end_ns)?;
        let (mine, later): (Vec<_>, Vec<_>) = self.events.drain(..).partition(|e| e.at_ns < end_ns);
        self.events = later;
        let masked = {
            let mut mask = self.mask.lock();
            let masked = mask
                .overlapping(self.start_ns, end_ns)
                .map(|s| s.clipped_for_manifest(self.start_ns, end_ns))
                .collect();
            // Spans that ended before this segment began were listed with the previous one and
            // redact nothing still to come.
            mask.prune_ended_before(self.start_ns);
            masked
        };
        self.closing.push_back(ClosingSegment {
            sequence: self.sequence,
            start_ns: self.start_ns,
            end_ns,
            media,
            events: mine,
            masked,
            last,
        });
        self.sequence += 1;
        self.start_ns = next_start;
        if let Some(length) = self.next_segment_ns.take() {
            self.config.segment_ns = length;
        }
        // Periods that ended before this segment are done with.
        let start = self.start_ns;
        self.screen_off
            .retain(|(_, to)| to.is_none_or(|to| to > start));
        if !last && self.is_screen_off(next_start) {
            self.last_frame = None;
        } else if !last {
            // Each segment opens with a keyframe of the screen as it was at the boundary.
            if let Some(mut frame) = self.last_frame.take() {
                frame.pts_ns = next_start;
                self.encode_frame(frame)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MaskSpan;
    use std::sync::Arc;
    use vigil_capture::PixelFormat;
    use vigil_proto::{MediaKind, ScreenMask};

    const S: u64 = 1_000_000_000;

    fn frame(pts_ns: u64) -> Capture {
        let (width, height) = (320u32, 240u32);
        Capture::Video(VideoFrame {
            pts_ns,
            width,
            height,
            stride: width as usize * 4,
            format: PixelFormat::Bgr0,
            data: Arc::new(vec![
                (pts_ns / 100_000_000) as u8;
                (width * height * 4) as usize
            ]),
            origin: (0, 0),
        })
    }

    fn segmenter() -> Segmenter {
        let config = SegmenterConfig {
            segment_ns: S,
            delay_ns: 0,
            encoder: EncoderConfig::default(),
            voice_sources: VoiceSources {
                microphone: "default".into(),
                system_audio: "default output".into(),
            },
        };
        Segmenter::new(config, 0).unwrap()
    }

    #[test]
    fn frames_from_before_the_origin_become_one_picture_at_the_origin() {
        // The origin is later than the first captures (the sources were still opening).
        let origin = 2 * S;
        let config = SegmenterConfig {
            segment_ns: S,
            delay_ns: 0,
            encoder: EncoderConfig::default(),
            voice_sources: VoiceSources {
                microphone: "default".into(),
                system_audio: "default output".into(),
            },
        };
        let mut s = Segmenter::new(config, origin).unwrap();
        for pts in [
            origin - 300_000_000,
            origin - 200_000_000,
            origin - 100_000_000,
        ] {
            s.push(frame(pts));
        }
        s.push(frame(origin + 100_000_000));
        let released = s.delay.release_video(u64::MAX);
        let times: Vec<u64> = released.iter().map(|f| f.pts_ns).collect();
        assert_eq!(times, vec![origin, origin + 100_000_000]);
        // The picture kept is the newest one captured before the origin.
        assert_eq!(
            released[0].data[0],
            ((origin - 100_000_000) / 100_000_000) as u8
        );
    }

    #[test]
    fn a_new_segment_length_starts_at_the_next_boundary() {
        let mut seg = segmenter();
        let mut done = Vec::new();
        for i in 0..60u64 {
            let t = i * S / 10;
            if t == 3 * S / 2 {
                seg.set_segment_length(2 * S);
            }
            seg.push(frame(t));
            done.extend(seg.tick(t).unwrap());
        }
        done.extend(seg.finish(6 * S).unwrap());
        let spans: Vec<_> = done
            .iter()
            .map(|s| (s.start_ns / S, s.end_ns / S))
            .collect();
        assert_eq!(spans, vec![(0, 1), (1, 2), (2, 4), (4, 6)]);
    }

    #[test]
    fn while_the_screen_is_off_segments_carry_voice_only() {
        let mut seg = segmenter();
        let mut done = Vec::new();
        for i in 0..50u64 {
            let t = i * S / 10;
            if t == 3 * S / 2 {
                seg.screen_off(t, "policy".into());
            }
            if t == 7 * S / 2 {
                seg.screen_on(t);
            }
            // No frames while the source is stopped.
            if !(3 * S / 2..7 * S / 2).contains(&t) {
                seg.push(frame(t));
            }
            done.extend(seg.tick(t).unwrap());
        }
        done.extend(seg.finish(5 * S).unwrap());
        let screens: Vec<bool> = done
            .iter()
            .map(|s| s.media.blob(MediaKind::Screen).is_some())
            .collect();
        assert_eq!(screens, vec![true, true, false, true, true]);
        assert!(done[1]
            .events
            .iter()
            .any(|e| e.kind == CaptureEventKind::SourceStopped));
    }

    #[test]
    fn spans_added_through_the_handle_between_frames_are_applied_and_listed() {
        let mut seg = segmenter();
        let timeline = seg.mask_timeline();
        let mut done = Vec::new();
        for i in 0..20u64 {
            let t = i * S / 10;
            seg.push(frame(t));
            // Decisions between frames take the timeline: it is not held while they run.
            let mut between = || {
                if t == S / 2 && timeline.lock().overlapping(0, u64::MAX).count() == 0 {
                    timeline.lock().add(MaskSpan {
                        start_ns: t,
                        end_ns: 3 * S / 2,
                        screen: ScreenMask::Full,
                        audio: true,
                        reason: "test".into(),
                        rule_id: None,
                        trigger: "api".into(),
                        decided_ns: Some(t),
                    });
                }
            };
            done.extend(seg.tick_with(t, &mut between).unwrap());
        }
        done.extend(seg.finish(2 * S).unwrap());
        let spans: Vec<Vec<(u64, u64)>> = done
            .iter()
            .map(|s| s.masked.iter().map(|m| (m.start_ns, m.end_ns)).collect())
            .collect();
        assert_eq!(spans, vec![vec![(S / 2, S)], vec![(S, 3 * S / 2)]]);
    }
}
