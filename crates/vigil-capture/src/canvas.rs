//! One picture of the whole desktop from per-monitor captures.
//!
//! Backends that capture each monitor on its own (Windows.Graphics.Capture, ScreenCaptureKit,
//! the ScreenCast portal) paint every monitor's frames at the monitor's place in the virtual
//! desktop; the canvas then gives one frame of the bounding box, as X11's root window does.
//! Areas no monitor covers stay black.

use std::sync::Arc;

use crate::{PixelFormat, VideoFrame};

/// Where one monitor sits in the virtual desktop, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorRect {
    /// Left edge (may be negative: a monitor left of the primary one).
    pub x: i32,
    /// Top edge (may be negative).
    pub y: i32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// The virtual desktop's pixels; monitors paint into it, frames are taken from it.
#[derive(Debug)]
pub struct DesktopCanvas {
    monitors: Vec<MonitorRect>,
    left: i32,
    top: i32,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
    changed: bool,
}

/// Largest canvas side: H.264 level 6.2's limit (beyond it no decoder opens the stream).
const MAX_SIDE: u32 = 8192;

impl DesktopCanvas {
    /// A black canvas over the bounding box of `monitors` (even-sized, as 4:2:0 encoding needs).
    pub fn new(monitors: &[MonitorRect]) -> Self {
        let left = monitors.iter().map(|m| m.x).min().unwrap_or(0);
        let top = monitors.iter().map(|m| m.y).min().unwrap_or(0);
        let right = monitors
            .iter()
            .map(|m| m.x as i64 + m.width as i64)
            .max()
            .unwrap_or(2);
        let bottom = monitors
            .iter()
            .map(|m| m.y as i64 + m.height as i64)
            .max()
            .unwrap_or(2);
        let even = |v: i64| ((v.max(2) as u32 + 1) & !1).min(MAX_SIDE);
        let width = even(right - left as i64);
        let height = even(bottom - top as i64);
        Self {
            monitors: monitors.to_vec(),
            left,
            top,
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 4],
            changed: false,
        }
    }

    /// The monitors this canvas was laid out for.
    pub fn monitors(&self) -> &[MonitorRect] {
        &self.monitors
    }

    /// Canvas size in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Paints a BGRx image of monitor `index` at its place. An image larger than the monitor
    /// (a resolution change the layout does not know yet) is clipped to the monitor's rectangle.
    pub fn paint(&mut self, index: usize, image: &[u8], width: u32, height: u32, stride: usize) {
        let Some(rect) = self.monitors.get(index).copied() else {
            return;
        };
        let x0 = (rect.x - self.left) as usize;
        let y0 = (rect.y - self.top) as usize;
        let cols = width
            .min(rect.width)
            .min(self.width.saturating_sub(x0 as u32)) as usize;
        let rows = height
            .min(rect.height)
            .min(self.height.saturating_sub(y0 as u32)) as usize;
        let canvas_stride = self.width as usize * 4;
        for row in 0..rows {
            let src = row * stride;
            let Some(line) = image.get(src..src + cols * 4) else {
                break;
            };
            let dst = (y0 + row) * canvas_stride + x0 * 4;
            self.pixels[dst..dst + cols * 4].copy_from_slice(line);
        }
        self.changed = true;
    }

    /// The desktop as a frame stamped `pts_ns`, if anything was painted since the last one.
    pub fn take_frame(&mut self, pts_ns: u64) -> Option<VideoFrame> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        Some(VideoFrame {
            pts_ns,
            width: self.width,
            height: self.height,
            stride: self.width as usize * 4,
            format: PixelFormat::Bgr0,
            data: Arc::new(self.pixels.clone()),
            origin: (self.left, self.top),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(width: u32, height: u32, value: u8) -> Vec<u8> {
        vec![value; width as usize * height as usize * 4]
    }

    fn pixel(frame: &VideoFrame, x: u32, y: u32) -> u8 {
        frame.data[y as usize * frame.stride + x as usize * 4]
    }

    #[test]
    fn monitors_land_at_their_places_in_the_bounding_box() {
        // A 1280x1024 monitor left of and lower than a 1920x1080 primary.
        let left = MonitorRect {
            x: -1280,
            y: 56,
            width: 1280,
            height: 1024,
        };
        let primary = MonitorRect {
            x: 0,
            y: 0,
            width: 1920,
            height: 1080,
        };
        let mut canvas = DesktopCanvas::new(&[primary, left]);
        assert_eq!(canvas.size(), (3200, 1080));
        assert!(canvas.take_frame(0).is_none(), "nothing painted yet");
        canvas.paint(0, &solid(1920, 1080, 200), 1920, 1080, 1920 * 4);
        canvas.paint(1, &solid(1280, 1024, 100), 1280, 1024, 1280 * 4);
        let frame = canvas.take_frame(7).expect("a frame");
        assert_eq!((frame.width, frame.height, frame.pts_ns), (3200, 1080, 7));
        assert_eq!(pixel(&frame, 0, 55), 0, "above the left monitor: uncovered");
        assert_eq!(pixel(&frame, 0, 56), 100);
        assert_eq!(pixel(&frame, 1279, 1079), 100);
        assert_eq!(pixel(&frame, 1280, 0), 200);
        assert_eq!(pixel(&frame, 3199, 1079), 200);
        assert!(canvas.take_frame(8).is_none(), "unchanged: no new frame");
    }

    #[test]
    fn oversized_or_short_images_are_clipped_not_fatal() {
        let rect = MonitorRect {
            x: 0,
            y: 0,
            width: 101,
            height: 51,
        };
        let mut canvas = DesktopCanvas::new(&[rect]);
        assert_eq!(canvas.size(), (102, 52), "rounded up to even sides");
        canvas.paint(0, &solid(300, 300, 9), 300, 300, 1200);
        canvas.paint(0, &[1, 2, 3], 100, 50, 400);
        canvas.paint(5, &solid(10, 10, 1), 10, 10, 40);
        let frame = canvas.take_frame(0).expect("a frame");
        assert_eq!(pixel(&frame, 100, 50), 9);
        assert_eq!(pixel(&frame, 101, 51), 0, "outside the monitor");
    }
}
