//! The desktop picture on Wayland: each shared monitor's newest picture, painted at its place
//! into one canvas, which is sent at most `fps` times a second and only when it changed.
//!
//! The portal places monitors in the compositor's logical layout, while each stream delivers
//! pixels (twice as many per side on a monitor scaled by 2). Positions are scaled by the largest
//! pixels-per-logical-unit ratio, and each monitor keeps its own pixel size: monitors then never
//! overlap (at worst a less scaled one leaves a black margin).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crossbeam_channel::Sender;

use super::format::{pack_rows, Layout};
use super::portal::PortalStream;
use super::sink::{event, ReportedDesktop, Sink};
use crate::{Capture, Clock, DesktopCanvas, MonitorRect, SourceEventKind, VideoFrame};

/// Pixel rectangles of monitors from the portal's logical places and the streams' pixel sizes.
/// A monitor without a position goes in a row right of the others.
fn place(monitors: &[(&PortalStream, Layout)]) -> Vec<MonitorRect> {
    let scale = monitors
        .iter()
        .filter_map(|(portal, layout)| {
            let (logical_width, _) = portal.size.filter(|&(w, h)| w > 0 && h > 0)?;
            Some(f64::from(layout.width) / f64::from(logical_width))
        })
        .fold(1.0_f64, f64::max);
    let placed: Vec<Option<MonitorRect>> = monitors
        .iter()
        .map(|(portal, layout)| {
            portal.position.map(|(x, y)| MonitorRect {
                x: (f64::from(x) * scale).round() as i32,
                y: (f64::from(y) * scale).round() as i32,
                width: layout.width,
                height: layout.height,
            })
        })
        .collect();
    let mut next_x = placed
        .iter()
        .flatten()
        .map(|r| r.x.saturating_add_unsigned(r.width))
        .max()
        .unwrap_or(0);
    let top = placed.iter().flatten().map(|r| r.y).min().unwrap_or(0);
    monitors
        .iter()
        .zip(placed)
        .map(|((_, layout), rect)| {
            rect.unwrap_or_else(|| {
                let rect = MonitorRect {
                    x: next_x,
                    y: top,
                    width: layout.width,
                    height: layout.height,
                };
                next_x = next_x.saturating_add_unsigned(layout.width);
                rect
            })
        })
        .collect()
}

fn count_displays(n: usize) -> String {
    match n {
        1 => "1 display".to_string(),
        n => format!("{n} displays"),
    }
}

/// One shared monitor: where the portal puts it, its negotiated format, its newest picture.
struct MonitorPicture {
    portal: PortalStream,
    layout: Option<Layout>,
    /// Packed BGR0 rows at `layout`'s size; empty until the first picture of that size.
    pixels: Vec<u8>,
    captured_at_ns: u64,
}

/// Every monitor's picture and the canvas they are painted into; lives on the PipeWire thread.
pub(super) struct Desktop {
    clock: Clock,
    tx: Sender<Capture>,
    reported: Rc<RefCell<Option<ReportedDesktop>>>,
    opened: Rc<Cell<bool>>,
    monitors: Vec<MonitorPicture>,
    /// Built once every monitor has negotiated a format; rebuilt when a size changes.
    canvas: Option<DesktopCanvas>,
    painted_at_ns: u64,
    last_sent: Option<VideoFrame>,
}

impl Desktop {
    pub(super) fn new(sink: &Sink, streams: &[PortalStream]) -> Self {
        Self {
            clock: sink.clock,
            tx: sink.tx.clone(),
            reported: sink.reported.clone(),
            opened: sink.opened.clone(),
            monitors: streams
                .iter()
                .map(|portal| MonitorPicture {
                    portal: portal.clone(),
                    layout: None,
                    pixels: Vec::new(),
                    captured_at_ns: 0,
                })
                .collect(),
            canvas: None,
            painted_at_ns: 0,
            last_sent: None,
        }
    }

    /// The negotiated format of monitor `index`; `None` before negotiation.
    pub(super) fn layout(&self, index: usize) -> Option<Layout> {
        self.monitors.get(index)?.layout
    }

    /// Monitor `index` negotiated a (new) format: lays the desktop out again once every
    /// monitor has one, and reports the new layout.
    pub(super) fn set_format(&mut self, index: usize, layout: Layout) {
        let Some(monitor) = self.monitors.get_mut(index) else {
            return;
        };
        monitor.layout = Some(layout);
        // A picture of another size or byte order cannot be painted again.
        monitor.pixels.clear();
        self.relayout();
    }

    fn relayout(&mut self) {
        let Some(negotiated) = self
            .monitors
            .iter()
            .map(|m| m.layout.map(|layout| (&m.portal, layout)))
            .collect::<Option<Vec<_>>>()
        else {
            return;
        };
        let rects = place(&negotiated);
        if self
            .canvas
            .as_ref()
            .is_some_and(|canvas| canvas.monitors() == rects.as_slice())
        {
            return;
        }
        let mut canvas = DesktopCanvas::new(&rects);
        // Monitors send frames on damage only: repaint what they sent, or a still monitor
        // would stay black until something moves on it.
        for (index, monitor) in self.monitors.iter().enumerate() {
            if let (false, Some(layout)) = (monitor.pixels.is_empty(), monitor.layout) {
                let row = layout.width as usize * 4;
                canvas.paint(index, &monitor.pixels, layout.width, layout.height, row);
                self.painted_at_ns = self.painted_at_ns.max(monitor.captured_at_ns);
            }
        }
        let size = canvas.size();
        self.canvas = Some(canvas);
        self.report(&rects, size);
    }

    /// Sends DeviceOpened once a session, GeometryChanged when the layout differs from the last
    /// one reported (in this session or the one before).
    fn report(&self, rects: &[MonitorRect], size: (u32, u32)) {
        let streams: Vec<String> = self
            .monitors
            .iter()
            .zip(rects)
            .map(|(m, r)| {
                let id = m.portal.node_id;
                format!("stream {id} {}x{} at {},{}", r.width, r.height, r.x, r.y)
            })
            .collect();
        let displays = count_displays(rects.len());
        let (width, height) = size;
        tracing::info!(%displays, width, height, ?streams, "Wayland desktop laid out");
        if !self.opened.replace(true) {
            let detail = format!(
                "Wayland portal: {displays}, desktop {width}x{height}: {}",
                streams.join("; ")
            );
            let _ = self
                .tx
                .send(event(&self.clock, SourceEventKind::DeviceOpened, detail));
        }
        let now = ReportedDesktop::new(rects, size);
        let before = self.reported.replace(Some(now.clone()));
        if let Some(old) = before.filter(|old| old.rects != now.rects) {
            let (old_width, old_height) = old.size;
            let detail = format!("{old_width}x{old_height} -> {width}x{height}, {displays}");
            tracing::info!(%detail, "screen geometry changed");
            let _ = self
                .tx
                .send(event(&self.clock, SourceEventKind::GeometryChanged, detail));
        }
    }

    /// Copies a buffer of monitor `index` (`size` bytes at `offset`, rows `stride` apart) as its
    /// newest picture and paints it. False when it holds less than the negotiated size (a size
    /// change is under way; the new format follows).
    pub(super) fn receive(
        &mut self,
        index: usize,
        captured_at_ns: u64,
        bytes: &[u8],
        (offset, size, stride): (usize, usize, usize),
    ) -> bool {
        let Some(monitor) = self.monitors.get_mut(index) else {
            return false;
        };
        let Some(layout) = monitor.layout else {
            return false;
        };
        if !pack_rows(bytes, offset, size, stride, layout, &mut monitor.pixels) {
            return false;
        }
        monitor.captured_at_ns = captured_at_ns;
        if let Some(canvas) = &mut self.canvas {
            let row = layout.width as usize * 4;
            canvas.paint(index, &monitor.pixels, layout.width, layout.height, row);
            // Streams are served in turn, not in capture order: keep stamps increasing.
            self.painted_at_ns = self.painted_at_ns.max(captured_at_ns);
        }
        true
    }

    /// Sends the desktop if it changed since the last frame sent. False when nobody receives
    /// frames any more.
    pub(super) fn send_frame(&mut self) -> bool {
        let Some(frame) = self
            .canvas
            .as_mut()
            .and_then(|canvas| canvas.take_frame(self.painted_at_ns))
        else {
            return true;
        };
        let unchanged = self.last_sent.as_ref().is_some_and(|last| {
            last.width == frame.width && last.height == frame.height && last.data == frame.data
        });
        if unchanged {
            return true;
        }
        self.last_sent = Some(frame.clone());
        self.tx.send(Capture::Video(frame)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal(position: Option<(i32, i32)>, size: Option<(u32, u32)>) -> PortalStream {
        PortalStream {
            node_id: 1,
            position,
            size,
        }
    }

    fn layout(width: u32, height: u32) -> Layout {
        Layout {
            width,
            height,
            swap_red_blue: false,
        }
    }

    fn rect(x: i32, y: i32, width: u32, height: u32) -> MonitorRect {
        MonitorRect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn unscaled_monitors_keep_the_portal_layout() {
        let left = portal(Some((0, 0)), Some((1920, 1080)));
        let right = portal(Some((1920, 0)), Some((2560, 1440)));
        let rects = place(&[(&left, layout(1920, 1080)), (&right, layout(2560, 1440))]);
        assert_eq!(rects, [rect(0, 0, 1920, 1080), rect(1920, 0, 2560, 1440)]);
    }

    #[test]
    fn scaled_monitor_pushes_positions_apart_instead_of_overlapping() {
        // A laptop panel scaled by 2 (logical 1440x900, 2880x1800 pixels), a 1x monitor right.
        let panel = portal(Some((0, 0)), Some((1440, 900)));
        let external = portal(Some((1440, 0)), Some((1920, 1080)));
        let rects = place(&[
            (&panel, layout(2880, 1800)),
            (&external, layout(1920, 1080)),
        ]);
        assert_eq!(rects, [rect(0, 0, 2880, 1800), rect(2880, 0, 1920, 1080)]);
    }

    #[test]
    fn monitors_without_position_go_in_a_row_to_the_right() {
        let placed = portal(Some((0, 100)), None);
        let unplaced = portal(None, None);
        let other = portal(None, Some((800, 600)));
        let rects = place(&[
            (&placed, layout(1000, 500)),
            (&unplaced, layout(640, 480)),
            (&other, layout(800, 600)),
        ]);
        assert_eq!(
            rects,
            [
                rect(0, 100, 1000, 500),
                rect(1000, 100, 640, 480),
                rect(1640, 100, 800, 600)
            ]
        );
    }
}
