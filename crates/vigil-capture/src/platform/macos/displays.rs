//! Which displays make up the desktop and where each one sits, in pixels.
//!
//! CoreGraphics places displays in one global space measured in points; a Retina display has two
//! (or more) pixels a point, an ordinary one has one. Every display is captured at its own pixel
//! size, and positions are scaled by the largest pixels-per-point ratio of the desktop: a display
//! then never overlaps its neighbours (at worst a low-density one leaves a black margin).
#![allow(unsafe_code)] // ScreenCaptureKit property reads and CGGetActiveDisplayList

use objc2::rc::Retained;
use objc2_core_graphics::{
    kCGNullDirectDisplay, CGDirectDisplayID, CGDisplayBounds, CGDisplayCopyDisplayMode,
    CGDisplayMirrorsDisplay, CGDisplayMode, CGError, CGGetActiveDisplayList, CGMainDisplayID,
};
use objc2_screen_capture_kit::{SCDisplay, SCShareableContent};

use crate::{MonitorInfo, MonitorRect};

/// More displays than any Mac drives; the active-display list is read into an array this long.
const MAX_DISPLAYS: usize = 32;

/// A display as CoreGraphics reports it; compared between polls to notice changes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct DisplayGeometry {
    pub id: CGDirectDisplayID,
    /// Left, top, width and height in the global desktop, in points.
    pub points: (f64, f64, f64, f64),
    /// Size in pixels: the display mode's backing size, else the size in points.
    pub pixels: (u32, u32),
}

impl DisplayGeometry {
    pub(super) fn of(id: CGDirectDisplayID) -> Self {
        let bounds = CGDisplayBounds(id);
        let points = (
            bounds.origin.x,
            bounds.origin.y,
            bounds.size.width,
            bounds.size.height,
        );
        let in_points = (
            bounds.size.width.max(0.0).round() as u32,
            bounds.size.height.max(0.0).round() as u32,
        );
        Self {
            id,
            points,
            pixels: mode_pixel_size(id).unwrap_or(in_points),
        }
    }

    /// Pixels per point (2 on Retina displays).
    fn scale(&self) -> f64 {
        let ratio = f64::from(self.pixels.0) / self.points.2;
        if ratio.is_finite() && ratio > 0.0 {
            ratio
        } else {
            1.0
        }
    }
}

/// Size of a display's current mode in pixels (not points, which are half of it on Retina).
fn mode_pixel_size(id: CGDirectDisplayID) -> Option<(u32, u32)> {
    let mode = CGDisplayCopyDisplayMode(id)?;
    let width = u32::try_from(CGDisplayMode::pixel_width(Some(&mode))).ok()?;
    let height = u32::try_from(CGDisplayMode::pixel_height(Some(&mode))).ok()?;
    (width > 0 && height > 0).then_some((width, height))
}

/// A software mirror shows another display's picture: capturing it would paint that twice.
fn is_mirror(id: CGDirectDisplayID) -> bool {
    CGDisplayMirrorsDisplay(id) != kCGNullDirectDisplay
}

/// The active displays (mirrors left out), ordered by id; `None` when CoreGraphics cannot say.
pub(super) fn active_displays() -> Option<Vec<DisplayGeometry>> {
    let mut ids = [kCGNullDirectDisplay; MAX_DISPLAYS];
    let mut count = 0u32;
    // SAFETY: `ids` has room for MAX_DISPLAYS entries, the capacity passed; both pointers are
    // valid for the duration of the call, which only writes through them.
    let status =
        unsafe { CGGetActiveDisplayList(MAX_DISPLAYS as u32, ids.as_mut_ptr(), &mut count) };
    if status != CGError::Success {
        return None;
    }
    let mut ids = ids[..(count as usize).min(MAX_DISPLAYS)].to_vec();
    ids.retain(|&id| !is_mirror(id));
    ids.sort_unstable();
    Some(ids.into_iter().map(DisplayGeometry::of).collect())
}

/// A display to capture and its place in the desktop picture.
pub(super) struct PlacedDisplay {
    pub display: Retained<SCDisplay>,
    pub geometry: DisplayGeometry,
    pub rect: MonitorRect,
}

/// The displays ScreenCaptureKit can capture (mirrors left out), ordered by id, each placed in
/// pixels.
pub(super) fn capturable_displays(content: &SCShareableContent) -> Vec<PlacedDisplay> {
    // SAFETY: a plain property read on a valid SCShareableContent.
    let displays = unsafe { content.displays() };
    let mut found: Vec<(Retained<SCDisplay>, DisplayGeometry)> = displays
        .iter()
        .filter_map(|display| {
            // SAFETY: a plain property read on a valid SCDisplay.
            let id = unsafe { display.displayID() };
            (!is_mirror(id)).then(|| (display, DisplayGeometry::of(id)))
        })
        .collect();
    found.sort_unstable_by_key(|(_, geometry)| geometry.id);
    let geometries: Vec<DisplayGeometry> = found.iter().map(|(_, g)| *g).collect();
    found
        .into_iter()
        .zip(place(&geometries))
        .map(|((display, geometry), rect)| PlacedDisplay {
            display,
            geometry,
            rect,
        })
        .collect()
}

/// Pixel rectangles of `displays`: positions scaled by the desktop's largest pixels-per-point
/// ratio, sizes in each display's own pixels.
pub(super) fn place(displays: &[DisplayGeometry]) -> Vec<MonitorRect> {
    let scale = displays
        .iter()
        .map(DisplayGeometry::scale)
        .fold(1.0_f64, f64::max);
    displays
        .iter()
        .map(|d| MonitorRect {
            x: (d.points.0 * scale).round() as i32,
            y: (d.points.1 * scale).round() as i32,
            width: d.pixels.0,
            height: d.pixels.1,
        })
        .collect()
}

/// The listing `vigil-agent devices` shows: the same places the capture paints at.
pub(super) fn monitor_infos(displays: &[PlacedDisplay]) -> Vec<MonitorInfo> {
    let main_id = CGMainDisplayID();
    displays
        .iter()
        .map(|d| MonitorInfo {
            name: format!("display-{}", d.geometry.id),
            x: d.rect.x,
            y: d.rect.y,
            width: d.rect.width,
            height: d.rect.height,
            primary: d.geometry.id == main_id,
        })
        .collect()
}
