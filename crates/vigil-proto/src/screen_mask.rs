//! What a mask does to the screen: one vocabulary for the masking decisions (`vigil-mask`), the
//! redaction that applies them (`vigil-media`) and the manifest that lists them.

use serde::{Deserialize, Serialize};

/// A rectangle in screen coordinates (pixels of the captured desktop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    /// Left edge.
    pub x: i32,
    /// Top edge.
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What a mask does to the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScreenMask {
    /// The whole picture is blacked out.
    Full,
    /// Only this rectangle (desktop coordinates) is blacked out.
    Region(Rect),
    /// The screen is left as is (audio-only span).
    None,
}

impl ScreenMask {
    /// The name used in manifests ([`crate::MaskedSpan::screen`]) and the status: `full`,
    /// `region` or `none`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScreenMask::Full => "full",
            ScreenMask::Region(_) => "region",
            ScreenMask::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_each_screen_action() {
        let region = ScreenMask::Region(Rect {
            x: -10,
            y: 0,
            width: 4,
            height: 2,
        });
        let names: Vec<&str> = [ScreenMask::Full, region, ScreenMask::None]
            .iter()
            .map(ScreenMask::as_str)
            .collect();
        assert_eq!(names, ["full", "region", "none"]);
    }
}
