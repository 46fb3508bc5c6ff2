//! The banner drawn into a fully masked picture, so that anyone replaying the recording sees
//! that (and why) the screen was masked rather than a blank screen.

use font8x8::{UnicodeFonts, BASIC_FONTS};

/// Glyphs are 8x8 pixels drawn at this scale.
const SCALE: usize = 3;
/// The band's height: one line of text and its margins.
pub(crate) const BANNER_HEIGHT: usize = 8 * SCALE + 16;
const BAND: u8 = 0x30;
const INK: u8 = 0xff;

/// The banner's text: ASCII only, and never a digit (a reason must not carry card-like data
/// into the picture).
pub(crate) fn banner_text(reason: &str) -> String {
    let reason: String = reason
        .chars()
        .map(|c| match c {
            '0'..='9' => '#',
            ' '..='~' => c,
            _ => '?',
        })
        .collect();
    format!("MASKED - {reason}")
}

/// Draws `text` on a band along the bottom of a BGRx picture.
pub(crate) fn draw_banner(data: &mut [u8], width: usize, height: usize, stride: usize, text: &str) {
    if height < BANNER_HEIGHT || width < 8 * SCALE {
        return;
    }
    let top = height - BANNER_HEIGHT;
    for row in top..height {
        let line = &mut data[row * stride..row * stride + width * 4];
        for px in line.chunks_exact_mut(4) {
            px[..3].fill(BAND);
        }
    }
    let glyph_top = top + (BANNER_HEIGHT - 8 * SCALE) / 2;
    let text_width = text.chars().count() * 8 * SCALE;
    let mut x0 = width.saturating_sub(text_width) / 2;
    for c in text.chars() {
        if x0 + 8 * SCALE > width {
            break;
        }
        let glyph = BASIC_FONTS.get(c).unwrap_or([0; 8]);
        for (gy, bits) in glyph.iter().enumerate() {
            for gx in 0..8 {
                if bits & (1 << gx) == 0 {
                    continue;
                }
                for dy in 0..SCALE {
                    let row = glyph_top + gy * SCALE + dy;
                    let start = row * stride + (x0 + gx * SCALE) * 4;
                    for px in data[start..start + SCALE * 4].chunks_exact_mut(4) {
                        px[..3].fill(INK);
                    }
                }
            }
        }
        x0 += 8 * SCALE;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_never_reach_the_banner() {
        let text = banner_text("api: card 4111 1111 1111 1111 — on file");
        assert!(!text.chars().any(|c| c.is_ascii_digit()), "{text}");
        assert!(text.starts_with("MASKED - api: card #### "));
    }

    #[test]
    fn the_banner_is_drawn_on_the_bottom_band_only() {
        let (w, h) = (640usize, 120usize);
        let mut data = vec![0u8; w * h * 4];
        draw_banner(&mut data, w, h, w * 4, "MASKED - test");
        let row_max = |row: usize| *data[row * w * 4..(row + 1) * w * 4].iter().max().unwrap();
        assert!(
            (0..h - BANNER_HEIGHT).all(|r| row_max(r) == 0),
            "above the band"
        );
        assert_eq!(row_max(h - BANNER_HEIGHT), BAND, "band edge");
        let lit = (h - BANNER_HEIGHT..h).any(|r| row_max(r) == INK);
        assert!(lit, "text is drawn");
    }
}
