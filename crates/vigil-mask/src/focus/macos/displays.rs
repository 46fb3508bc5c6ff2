//! AX rectangles are in points of CoreGraphics' global display space; the capture's desktop is
//! in pixels. This maps one to the other the way the macOS capture places its displays
//! (vigil-capture `platform/macos/displays.rs`): each display at its origin in points scaled by
//! the desktop's largest pixels-per-point ratio, its content at its own ratio.
#![allow(unsafe_code)] // CGGetActiveDisplayList fills a caller-provided array

use objc2_core_foundation::{CGPoint, CGRect, CGSize};
use objc2_core_graphics::{
    kCGNullDirectDisplay, CGDirectDisplayID, CGDisplayBounds, CGDisplayCopyDisplayMode,
    CGDisplayMirrorsDisplay, CGDisplayMode, CGError, CGGetActiveDisplayList,
};

use crate::Rect;

/// More displays than any Mac drives.
const MAX_DISPLAYS: usize = 32;

struct Display {
    bounds: CGRect,
    /// Pixels per point (2 on Retina displays).
    scale: f64,
}

/// The rectangle in the capture's pixels; `None` when no display holds its centre (the mask
/// then covers the whole screen rather than guess).
pub(super) fn to_pixels(origin: CGPoint, size: CGSize) -> Option<Rect> {
    if !(size.width > 0.0 && size.height > 0.0) {
        return None;
    }
    let displays = active_displays()?;
    let desktop_scale = displays.iter().map(|d| d.scale).fold(1.0_f64, f64::max);
    let centre = CGPoint::new(origin.x + size.width / 2.0, origin.y + size.height / 2.0);
    let display = displays.iter().find(|d| contains(&d.bounds, centre))?;
    let left = (display.bounds.origin.x * desktop_scale).round()
        + (origin.x - display.bounds.origin.x) * display.scale;
    let top = (display.bounds.origin.y * desktop_scale).round()
        + (origin.y - display.bounds.origin.y) * display.scale;
    Some(Rect {
        x: left.floor() as i32,
        y: top.floor() as i32,
        width: (size.width * display.scale).ceil() as u32,
        height: (size.height * display.scale).ceil() as u32,
    })
}

fn contains(bounds: &CGRect, p: CGPoint) -> bool {
    p.x >= bounds.origin.x
        && p.y >= bounds.origin.y
        && p.x < bounds.origin.x + bounds.size.width
        && p.y < bounds.origin.y + bounds.size.height
}

/// The active displays, mirrors left out (as the capture does).
fn active_displays() -> Option<Vec<Display>> {
    let mut ids = [kCGNullDirectDisplay; MAX_DISPLAYS];
    let mut count = 0u32;
    // SAFETY: `ids` has room for MAX_DISPLAYS entries, the capacity passed; both pointers are
    // valid for the duration of the call, which only writes through them.
    let status =
        unsafe { CGGetActiveDisplayList(MAX_DISPLAYS as u32, ids.as_mut_ptr(), &mut count) };
    if status != CGError::Success {
        return None;
    }
    let ids = ids.get(..count as usize)?;
    Some(
        ids.iter()
            .filter(|&&id| CGDisplayMirrorsDisplay(id) == kCGNullDirectDisplay)
            .map(|&id| display(id))
            .collect(),
    )
}

fn display(id: CGDirectDisplayID) -> Display {
    let bounds = CGDisplayBounds(id);
    let pixel_width = CGDisplayCopyDisplayMode(id)
        .map(|mode| CGDisplayMode::pixel_width(Some(&mode)))
        .filter(|&w| w > 0);
    let scale = pixel_width
        .map(|w| w as f64 / bounds.size.width)
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Display { bounds, scale }
}
