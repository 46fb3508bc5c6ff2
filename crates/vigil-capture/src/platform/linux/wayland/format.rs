//! Pixel formats: what we offer PipeWire, what the compositor picked, and the copy of a
//! buffer into packed BGR0 rows.

use pipewire::spa;
use spa::param::format::{FormatProperties, MediaSubtype, MediaType};
use spa::param::video::{VideoFormat, VideoInfoRaw};
use spa::param::ParamType;
use spa::pod::serialize::PodSerializer;
use spa::pod::{Pod, Value};
use spa::utils::{Fraction, Rectangle, SpaTypes};

use crate::{CaptureError, CaptureErrorKind};

/// Largest monitor side offered in negotiation.
const MAX_SIDE: u32 = 16384;
/// Size offered first when the portal gave none; the compositor fixes the real one.
const FALLBACK_SIZE: (u32, u32) = (1920, 1080);

/// The negotiated picture.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    pub width: u32,
    pub height: u32,
    /// RGBx/RGBA: red and blue are swapped into BGR0 order.
    pub swap_red_blue: bool,
}

/// The layout of a negotiated Format param; None when it is not raw video.
pub(super) fn negotiated(param: &Pod) -> Option<Result<(Layout, VideoInfoRaw), CaptureError>> {
    let (media_type, media_subtype) = spa::param::format_utils::parse_format(param).ok()?;
    if media_type != MediaType::Video || media_subtype != MediaSubtype::Raw {
        return None;
    }
    let mut info = VideoInfoRaw::default();
    if let Err(e) = info.parse(param) {
        let msg = format!("unreadable PipeWire video format: {e}");
        return Some(Err(CaptureError::new(CaptureErrorKind::Backend, msg)));
    }
    let swap_red_blue = match info.format() {
        VideoFormat::BGRx | VideoFormat::BGRA => false,
        VideoFormat::RGBx | VideoFormat::RGBA => true,
        other => {
            let msg = format!("compositor chose unsupported pixel format {other:?}");
            return Some(Err(CaptureError::new(CaptureErrorKind::Unsupported, msg)));
        }
    };
    let layout = Layout {
        width: info.size().width,
        height: info.size().height,
        swap_red_blue,
    };
    Some(Ok((layout, info)))
}

/// Copies the chunk's picture (`size` bytes at `offset` of the mapped buffer) into packed BGR0
/// rows; false when it holds less than the layout.
pub(super) fn pack_rows(
    bytes: &[u8],
    offset: usize,
    size: usize,
    stride: usize,
    layout: Layout,
    out: &mut Vec<u8>,
) -> bool {
    let row = layout.width as usize * 4;
    let height = layout.height as usize;
    if bytes.is_empty() || row == 0 || height == 0 {
        return false;
    }
    // PipeWire documents the chunk offset as taken modulo the buffer size.
    let offset = offset % bytes.len();
    let valid = &bytes[offset..offset.saturating_add(size).min(bytes.len())];
    if valid.len() < stride * (height - 1) + row {
        return false;
    }
    out.clear();
    out.reserve(row * height);
    for y in 0..height {
        out.extend_from_slice(&valid[y * stride..y * stride + row]);
    }
    if layout.swap_red_blue {
        for pixel in out.chunks_exact_mut(4) {
            pixel.swap(0, 2);
        }
    }
    true
}

/// Highest frame rate the permissive fallback format accepts.
const ANY_RATE: u32 = 1000;

/// The formats we accept, best first: 32-bit raw RGB in either byte order, any size (the portal's
/// first). The first caps the rate at `fps` as compositors allow (frames on damage, framerate
/// 0/1, with a negotiable maxFramerate); the fallback takes any rate, which the capture then
/// throttles, for producers with a fixed rate and no maxFramerate.
pub(super) fn enum_formats(
    size: Option<(u32, u32)>,
    fps: u32,
) -> Result<[Vec<u8>; 2], CaptureError> {
    let fps = fps.max(1);
    let capped = format_object(size, fps, Some(fps));
    let fallback = format_object(size, ANY_RATE, None);
    Ok([serialize(capped)?, serialize(fallback)?])
}

fn format_object(size: Option<(u32, u32)>, max_rate: u32, cap: Option<u32>) -> spa::pod::Object {
    let (width, height) = size
        .filter(|&(w, h)| w > 0 && h > 0)
        .unwrap_or(FALLBACK_SIZE);
    let mut object = spa::pod::object!(
        SpaTypes::ObjectParamFormat,
        ParamType::EnumFormat,
        spa::pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
        spa::pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
        spa::pod::property!(
            FormatProperties::VideoFormat,
            Choice,
            Enum,
            Id,
            VideoFormat::BGRx,
            VideoFormat::BGRx,
            VideoFormat::BGRA,
            VideoFormat::RGBx,
            VideoFormat::RGBA,
        ),
        spa::pod::property!(
            FormatProperties::VideoSize,
            Choice,
            Range,
            Rectangle,
            Rectangle { width, height },
            Rectangle {
                width: 1,
                height: 1
            },
            Rectangle {
                width: MAX_SIDE,
                height: MAX_SIDE
            }
        ),
        spa::pod::property!(
            FormatProperties::VideoFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: 0, denom: 1 },
            Fraction { num: 0, denom: 1 },
            Fraction {
                num: max_rate,
                denom: 1
            }
        ),
    );
    if let Some(fps) = cap {
        object.properties.push(spa::pod::property!(
            FormatProperties::VideoMaxFramerate,
            Choice,
            Range,
            Fraction,
            Fraction { num: fps, denom: 1 },
            Fraction { num: 1, denom: 1 },
            Fraction { num: fps, denom: 1 }
        ));
    }
    object
}

fn serialize(object: spa::pod::Object) -> Result<Vec<u8>, CaptureError> {
    PodSerializer::serialize(std::io::Cursor::new(Vec::new()), &Value::Object(object))
        .map(|(cursor, _)| cursor.into_inner())
        .map_err(|e| CaptureError::new(CaptureErrorKind::Backend, format!("format pod: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_format(format: VideoFormat, width: u32, height: u32) -> Vec<u8> {
        let object = spa::pod::object!(
            SpaTypes::ObjectParamFormat,
            ParamType::Format,
            spa::pod::property!(FormatProperties::MediaType, Id, MediaType::Video),
            spa::pod::property!(FormatProperties::MediaSubtype, Id, MediaSubtype::Raw),
            spa::pod::property!(FormatProperties::VideoFormat, Id, format),
            spa::pod::property!(
                FormatProperties::VideoSize,
                Rectangle,
                Rectangle { width, height }
            ),
        );
        serialize(object).unwrap()
    }

    #[test]
    fn offered_format_is_raw_video() {
        for bytes in enum_formats(Some((2560, 1440)), 5).unwrap() {
            let pod = Pod::from_bytes(&bytes).unwrap();
            let (media_type, media_subtype) = spa::param::format_utils::parse_format(pod).unwrap();
            assert_eq!(media_type, MediaType::Video);
            assert_eq!(media_subtype, MediaSubtype::Raw);
        }
    }

    #[test]
    fn negotiated_format_gives_layout() {
        let bytes = fixed_format(VideoFormat::RGBx, 64, 32);
        let (layout, _) = negotiated(Pod::from_bytes(&bytes).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!((layout.width, layout.height), (64, 32));
        assert!(layout.swap_red_blue);
        let bytes = fixed_format(VideoFormat::I420, 64, 32);
        let refused = negotiated(Pod::from_bytes(&bytes).unwrap()).unwrap();
        assert_eq!(refused.unwrap_err().kind(), CaptureErrorKind::Unsupported);
    }

    #[test]
    fn rows_are_packed_from_padded_stride_and_offset() {
        let layout = Layout {
            width: 2,
            height: 2,
            swap_red_blue: false,
        };
        // 4 bytes of offset, rows of 8 pixel bytes padded to 12.
        let mut bytes = vec![0xEE; 4];
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
        bytes.extend_from_slice(&[9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0]);
        let mut out = Vec::new();
        assert!(pack_rows(&bytes, 4, 24, 12, layout, &mut out));
        assert_eq!(out, (1..=16).collect::<Vec<u8>>());
        // A chunk shorter than the layout (resize under way) is skipped.
        assert!(!pack_rows(&bytes, 4, 12, 12, layout, &mut out));
    }

    #[test]
    fn rgb_is_swizzled_to_bgr() {
        let layout = Layout {
            width: 1,
            height: 1,
            swap_red_blue: true,
        };
        let mut out = Vec::new();
        assert!(pack_rows(&[10, 20, 30, 255], 0, 4, 4, layout, &mut out));
        assert_eq!(out, [30, 20, 10, 255]);
    }
}
