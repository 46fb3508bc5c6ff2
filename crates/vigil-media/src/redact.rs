//! Redaction by the mask timeline: masked spans black out the screen (or a region of it) and
//! silence both voice tracks, by capture timestamp, before anything reaches the encoder. The
//! triggers that fill the timeline come with the masking stage; an empty timeline redacts nothing.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use vigil_capture::VideoFrame;
use vigil_proto::{MaskedSpan, Rect, ScreenMask};

/// Audio silenced beyond each end of a span: the voice codec smears sound over about two of
/// its 20 ms frames (look-ahead and overlap), which must not carry masked sound into the file.
pub const AUDIO_GUARD_NS: u64 = 60_000_000;

/// One masked span on the session clock.
#[derive(Debug, Clone)]
pub struct MaskSpan {
    /// Start, inclusive.
    pub start_ns: u64,
    /// End, exclusive; `u64::MAX` while open.
    pub end_ns: u64,
    /// Screen action.
    pub screen: ScreenMask,
    /// Whether both voice tracks are silenced.
    pub audio: bool,
    /// Why.
    pub reason: String,
    /// Matching rule.
    pub rule_id: Option<String>,
    /// Trigger that raised it.
    pub trigger: String,
    /// When the decision to mask was taken (session clock), when known: it must come before
    /// the delay line releases the media at `start_ns`.
    pub decided_ns: Option<u64>,
}

impl MaskSpan {
    /// The span as a segment's manifest lists it, clipped to the segment [start_ns, end_ns).
    pub fn clipped_for_manifest(&self, start_ns: u64, end_ns: u64) -> MaskedSpan {
        MaskedSpan {
            start_ns: self.start_ns.max(start_ns),
            end_ns: self.end_ns.min(end_ns),
            reason: self.reason.clone(),
            rule_id: self.rule_id.clone(),
            trigger: self.trigger.clone(),
            screen: self.screen.as_str().into(),
            audio: self.audio,
            decided_ns: self.decided_ns,
        }
    }
}

/// The spans known to the media stage, each under a stable id (ids survive pruning).
#[derive(Debug, Clone, Default)]
pub struct MaskTimeline {
    /// (id, span), ids increasing.
    spans: Vec<(usize, MaskSpan)>,
    next_id: usize,
    /// Media captured before this has left for the encoder: no span can mask it any more.
    applied_until: u64,
}

impl MaskTimeline {
    /// Adds a span (open while its end is `u64::MAX`); returns its id for [`Self::close`].
    /// A span that starts before media already sent to the encoder starts where it can still
    /// act: the manifest lists what was masked, never a mask decided too late to apply.
    pub fn add(&mut self, mut span: MaskSpan) -> usize {
        span.start_ns = span.start_ns.max(self.applied_until);
        span.end_ns = span.end_ns.max(span.start_ns);
        let id = self.next_id;
        self.next_id += 1;
        self.spans.push((id, span));
        id
    }

    fn position(&self, id: usize) -> Option<usize> {
        self.spans.binary_search_by_key(&id, |(i, _)| *i).ok()
    }

    /// Ends a span; a span can only be shortened to its own start, never extended backwards,
    /// nor to before media it already masked on its way to the encoder.
    pub fn close(&mut self, id: usize, end_ns: u64) {
        let applied_until = self.applied_until;
        if let Some(at) = self.position(id) {
            let span = &mut self.spans[at].1;
            let masked_until = if span.end_ns == u64::MAX {
                applied_until
            } else {
                0
            };
            span.end_ns = end_ns.max(span.start_ns).max(masked_until);
        }
    }

    /// Media captured before `ns` has been redacted and sent to the encoder.
    pub fn mark_applied_until(&mut self, ns: u64) {
        self.applied_until = self.applied_until.max(ns);
    }

    /// How far media has been redacted and sent to the encoder: a span decided now that
    /// starts earlier cannot reach back before this.
    pub fn applied_until(&self) -> u64 {
        self.applied_until
    }

    /// The span added as `id`, unless pruned.
    pub fn span(&self, id: usize) -> Option<&MaskSpan> {
        self.position(id).map(|at| &self.spans[at].1)
    }

    /// Forgets spans that ended at or before `ns` (media before it has been redacted and
    /// listed): a long session with region masks that follow a field adds many short spans.
    pub fn prune_ended_before(&mut self, ns: u64) {
        self.spans.retain(|(_, s)| s.end_ns > ns);
    }

    /// The earliest start or end of a screen span strictly between two instants.
    pub fn screen_edge_between(&self, after_ns: u64, before_ns: u64) -> Option<u64> {
        self.spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.screen != ScreenMask::None)
            .flat_map(|s| [s.start_ns, s.end_ns])
            .filter(|edge| *edge > after_ns && *edge < before_ns)
            .min()
    }

    /// Whether any screen span covers `at_ns` (for status).
    pub fn screen_masked_at(&self, at_ns: u64) -> Option<&MaskSpan> {
        self.overlapping(at_ns, at_ns + 1)
            .find(|s| s.screen != ScreenMask::None)
    }

    /// Spans overlapping [start, end).
    pub fn overlapping(&self, start_ns: u64, end_ns: u64) -> impl Iterator<Item = &MaskSpan> {
        self.spans
            .iter()
            .map(|(_, s)| s)
            .filter(move |s| s.start_ns < end_ns && s.end_ns > start_ns)
    }

    /// Blacks out what the spans covering the frame's timestamp require; returns true if masked.
    /// A fully masked picture carries a banner with the first full span's reason. Regions are
    /// in desktop coordinates and move by the frame's origin here, in one place.
    pub fn redact_frame(&self, frame: &mut VideoFrame) -> bool {
        let mut masked = false;
        let mut banner = None;
        for span in self.overlapping(frame.pts_ns, frame.pts_ns + 1) {
            if span.screen == ScreenMask::Full && banner.is_none() {
                banner = Some(crate::banner::banner_text(&span.reason));
            }
            let (x, y, w, h) = match span.screen {
                ScreenMask::None => continue,
                ScreenMask::Full => (0, 0, frame.width, frame.height),
                ScreenMask::Region(region) => match picture_rect(frame.origin, region) {
                    Some(rect) => rect,
                    // Wholly outside the picture: nothing of it is recorded.
                    None => continue,
                },
            };
            let data = std::sync::Arc::make_mut(&mut frame.data);
            let x_start = x.min(frame.width) as usize;
            let x_end = x.saturating_add(w).min(frame.width) as usize;
            for row in y.min(frame.height)..y.saturating_add(h).min(frame.height) {
                let start = row as usize * frame.stride + x_start * 4;
                let end = row as usize * frame.stride + x_end * 4;
                data[start..end].fill(0);
            }
            masked = true;
        }
        if let Some(text) = banner {
            let data = std::sync::Arc::make_mut(&mut frame.data);
            let (width, height) = (frame.width as usize, frame.height as usize);
            crate::banner::draw_banner(data, width, height, frame.stride, &text);
        }
        masked
    }

    /// Silences the samples of a run that fall in audio spans. `first_ns` is the first
    /// sample's time and `rate` the sample rate.
    /// Each span silences [`AUDIO_GUARD_NS`] more on both sides.
    pub fn redact_samples(&self, first_ns: u64, rate: u32, samples: &mut [f32]) {
        let end_ns = first_ns + samples.len() as u64 * 1_000_000_000 / rate as u64;
        let spans = self.overlapping(
            first_ns.saturating_sub(AUDIO_GUARD_NS),
            end_ns.saturating_add(AUDIO_GUARD_NS),
        );
        for span in spans.filter(|s| s.audio) {
            let start_ns = span.start_ns.saturating_sub(AUDIO_GUARD_NS);
            let stop_ns = span.end_ns.saturating_add(AUDIO_GUARD_NS);
            let from = start_ns.saturating_sub(first_ns) * rate as u64 / 1_000_000_000;
            let to =
                (stop_ns.saturating_sub(first_ns) as u128 * rate as u128).div_ceil(1_000_000_000);
            let to = (to.min(samples.len() as u128)) as usize;
            samples[(from as usize).min(to)..to].fill(0.0);
        }
    }
}

/// A handle to one session's mask timeline, shared by the segmenter that redacts by it and the
/// masking stage that fills it. Both run on the engine's thread: the lock is never contended,
/// it lets each side hold the timeline without borrowing it from the other.
#[derive(Debug, Clone, Default)]
pub struct MaskTimelineHandle(Arc<Mutex<MaskTimeline>>);

impl MaskTimelineHandle {
    /// The timeline, until the guard drops (locking it again meanwhile would wait forever).
    pub fn lock(&self) -> MutexGuard<'_, MaskTimeline> {
        // A panic while it was held left no half-made change: every change is one call.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A desktop rectangle in the picture's pixels (the picture's top-left is the desktop point
/// `origin`), clipped at its top and left edges; `None` when nothing of it is inside.
fn picture_rect(origin: (i32, i32), region: Rect) -> Option<(u32, u32, u32, u32)> {
    let left = region.x as i64 - origin.0 as i64;
    let top = region.y as i64 - origin.1 as i64;
    let right = left + region.width as i64;
    let bottom = top + region.height as i64;
    if right <= 0 || bottom <= 0 {
        return None;
    }
    let (l, t) = (left.max(0), top.max(0));
    let clamp = |v: i64| v.min(u32::MAX as i64) as u32;
    Some((clamp(l), clamp(t), clamp(right - l), clamp(bottom - t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vigil_capture::PixelFormat;

    fn white(origin: (i32, i32)) -> VideoFrame {
        VideoFrame {
            pts_ns: 1_000,
            width: 64,
            height: 32,
            stride: 64 * 4,
            format: PixelFormat::Bgr0,
            data: Arc::new(vec![255; 64 * 32 * 4]),
            origin,
        }
    }

    fn region(x: i32, y: i32, width: u32, height: u32) -> MaskSpan {
        MaskSpan {
            start_ns: 0,
            end_ns: u64::MAX,
            screen: ScreenMask::Region(Rect {
                x,
                y,
                width,
                height,
            }),
            audio: false,
            reason: "test".into(),
            rule_id: None,
            trigger: "test".into(),
            decided_ns: None,
        }
    }

    fn black(frame: &VideoFrame, x: usize, y: usize) -> bool {
        frame.data[y * frame.stride + x * 4] == 0
    }

    #[test]
    fn regions_move_by_the_origin_of_a_desktop_with_a_monitor_left_and_above() {
        // The picture starts at desktop (-1920, -1080): a monitor left of and above the
        // primary. A field at desktop (-1900, -1070) is at picture (20, 10).
        let mut timeline = MaskTimeline::default();
        timeline.add(region(-1900, -1070, 8, 4));
        let mut frame = white((-1920, -1080));
        assert!(timeline.redact_frame(&mut frame));
        assert!(black(&frame, 20, 10) && black(&frame, 27, 13));
        assert!(!black(&frame, 19, 10) && !black(&frame, 28, 13) && !black(&frame, 20, 14));
        assert!(
            !black(&frame, 0, 0),
            "desktop (0, 0) is not the picture's corner"
        );
    }

    #[test]
    fn regions_outside_the_picture_or_straddling_its_edges_are_clipped() {
        let mut timeline = MaskTimeline::default();
        timeline.add(region(-10, -10, 15, 15)); // straddles the corner
        timeline.add(region(5_000, 5_000, 10, 10)); // wholly outside
        timeline.add(region(60, 30, u32::MAX, u32::MAX)); // past the far edges
        let mut frame = white((0, 0));
        assert!(timeline.redact_frame(&mut frame));
        assert!(black(&frame, 0, 0) && black(&frame, 4, 4) && !black(&frame, 5, 5));
        assert!(black(&frame, 63, 31) && !black(&frame, 59, 31));
    }

    #[test]
    fn a_span_cannot_reach_back_before_media_sent_to_the_encoder() {
        let mut timeline = MaskTimeline::default();
        timeline.mark_applied_until(1_000);
        // Decided too late for 500..1000: the span starts where it can still act.
        let late = timeline.add(MaskSpan {
            start_ns: 500,
            ..region(0, 0, 10, 10)
        });
        assert_eq!(timeline.span(late).unwrap().start_ns, 1_000);
        // Open while media up to 2000 went out: it masked that media, whatever its close says.
        timeline.mark_applied_until(2_000);
        timeline.close(late, 1_500);
        assert_eq!(timeline.span(late).unwrap().end_ns, 2_000);
        // A span wholly in the past masks nothing and overlaps nothing.
        let past = timeline.add(MaskSpan {
            start_ns: 100,
            end_ns: 900,
            ..region(0, 0, 10, 10)
        });
        assert_eq!(timeline.overlapping(0, 2_000).count(), 1);
        assert_eq!(timeline.span(past).unwrap().end_ns, 2_000);
        assert_eq!(timeline.span(past).unwrap().start_ns, 2_000);
    }

    #[test]
    fn ids_survive_pruning_of_ended_spans() {
        let mut timeline = MaskTimeline::default();
        let a = timeline.add(region(0, 0, 1, 1));
        let b = timeline.add(region(0, 0, 1, 1));
        timeline.close(a, 10);
        timeline.prune_ended_before(10);
        assert!(timeline.span(a).is_none());
        timeline.close(b, 20);
        assert_eq!(timeline.span(b).map(|s| s.end_ns), Some(20));
    }

    #[test]
    fn the_manifest_lists_a_span_clipped_to_its_segment_with_its_screen_action_named() {
        let span = MaskSpan {
            start_ns: 500,
            end_ns: u64::MAX,
            decided_ns: Some(450),
            rule_id: Some("card".into()),
            ..region(0, 0, 10, 10)
        };
        let listed = span.clipped_for_manifest(1_000, 2_000);
        assert_eq!(
            listed,
            MaskedSpan {
                start_ns: 1_000,
                end_ns: 2_000,
                reason: "test".into(),
                rule_id: Some("card".into()),
                trigger: "test".into(),
                screen: "region".into(),
                audio: false,
                decided_ns: Some(450),
            }
        );
    }
}
