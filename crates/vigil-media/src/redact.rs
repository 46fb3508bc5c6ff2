//! Redaction by the mask timeline: masked spans black out the screen (or a region of it) and
//! silence both voice tracks, by capture timestamp, before anything reaches the encoder. The
//! triggers that fill the timeline come with the masking stage; an empty timeline redacts nothing.

use vigil_capture::VideoFrame;

/// Audio silenced beyond each end of a span: the voice codec smears sound over about two of
/// its 20 ms frames (look-ahead and overlap), which must not carry masked sound into the file.
pub const AUDIO_GUARD_NS: u64 = 60_000_000;

/// What a span does to the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScreenMask {
    /// The whole picture is blacked out.
    Full,
    /// Only this rectangle (x, y, width, height) is blacked out.
    Region(i32, i32, u32, u32),
    /// The screen is left as is (audio-only span).
    None,
}

impl ScreenMask {
    /// The name used in manifests and the status: `full`, `region` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScreenMask::Full => "full",
            ScreenMask::Region(..) => "region",
            ScreenMask::None => "none",
        }
    }
}

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

/// The spans known to the media stage.
#[derive(Debug, Clone, Default)]
pub struct MaskTimeline {
    spans: Vec<MaskSpan>,
}

impl MaskTimeline {
    /// Adds a span (open while its end is `u64::MAX`); returns its index for [`Self::close`].
    pub fn add(&mut self, span: MaskSpan) -> usize {
        self.spans.push(span);
        self.spans.len() - 1
    }

    /// Ends a span; a span can only be shortened to its own start, never extended backwards.
    pub fn close(&mut self, index: usize, end_ns: u64) {
        if let Some(span) = self.spans.get_mut(index) {
            span.end_ns = end_ns.max(span.start_ns);
        }
    }

    /// The span added at `index`.
    pub fn span(&self, index: usize) -> Option<&MaskSpan> {
        self.spans.get(index)
    }

    /// The earliest start or end of a screen span strictly between two instants.
    pub fn screen_edge_between(&self, after_ns: u64, before_ns: u64) -> Option<u64> {
        self.spans
            .iter()
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
            .filter(move |s| s.start_ns < end_ns && s.end_ns > start_ns)
    }

    /// Blacks out what the spans covering the frame's timestamp require; returns true if masked.
    /// A fully masked picture carries a banner with the first full span's reason.
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
                ScreenMask::Region(x, y, w, h) => (x.max(0) as u32, y.max(0) as u32, w, h),
            };
            let data = std::sync::Arc::make_mut(&mut frame.data);
            let x_end = (x + w).min(frame.width) as usize;
            for row in y.min(frame.height)..(y + h).min(frame.height) {
                let start = row as usize * frame.stride + x as usize * 4;
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
