//! The encoders' settings: from the policy, with Vigil's defaults.

/// Encoder settings (from policy, with defaults).
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// x264 preset.
    pub preset: String,
    /// x264 constant rate factor.
    pub crf: u32,
    /// Maximum frame rate of the screen.
    pub max_fps: u32,
    /// Opus bit rate per voice track.
    pub audio_bitrate: u32,
    /// x264 threads (0 = x264's choice).
    pub threads: u32,
    /// Extra x264 options (`key=value:key=value`), after Vigil's own.
    pub x264_params: String,
    /// Largest encoded picture height (0: the desktop's); taller desktops are scaled down,
    /// keeping their aspect ratio.
    pub max_height: u32,
    /// Record only this part of the desktop (the primary monitor, by policy); frames it does
    /// not fit (the desktop changed) are recorded whole.
    pub crop: Option<CropRect>,
}

/// A rectangle of the desktop, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl CropRect {
    /// The part of a `width` × `height` frame to encode: this rectangle when it fits, else all.
    pub(crate) fn within(crop: Option<CropRect>, width: u32, height: u32) -> CropRect {
        match crop {
            Some(c)
                if c.width >= 2
                    && c.height >= 2
                    && c.x.saturating_add(c.width) <= width
                    && c.y.saturating_add(c.height) <= height =>
            {
                c
            }
            _ => CropRect {
                x: 0,
                y: 0,
                width,
                height,
            },
        }
    }
}

impl Default for EncoderConfig {
    fn default() -> Self {
        Self {
            preset: "veryfast".into(),
            crf: 32,
            max_fps: 5,
            audio_bitrate: 16_000,
            threads: 1,
            x264_params: String::new(),
            max_height: 0,
            crop: None,
        }
    }
}
