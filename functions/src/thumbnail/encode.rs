//! Pixels to bytes in the requested format.

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};

use super::decode::Layout;
use super::params::{Chroma, Format};
use super::resize::Frame;
use super::turbo;
use crate::FnError;

pub fn encode(
    frame: &Frame<'_>,
    format: Format,
    quality: u8,
    chroma: Chroma,
) -> Result<Vec<u8>, FnError> {
    let failed = |e: &dyn std::fmt::Display| FnError::transient(format!("encoding failed: {e}"));
    let mut out = Vec::with_capacity(frame.pixels.len() / 8 + 1024);
    match format {
        Format::Jpeg => {
            // JPEG has no alpha: flatten onto white, as a browser shows a transparent picture.
            out = match frame.layout {
                Layout::Rgba => {
                    let rgb = flatten_on_white(&frame.pixels);
                    turbo::encode(
                        &rgb,
                        frame.width,
                        frame.height,
                        Layout::Rgb,
                        quality,
                        chroma,
                    )
                }
                layout => turbo::encode(
                    &frame.pixels,
                    frame.width,
                    frame.height,
                    layout,
                    quality,
                    chroma,
                ),
            }
            .map_err(|e| failed(&e))?;
        }
        Format::Png => {
            let color = match frame.layout {
                Layout::Gray => ExtendedColorType::L8,
                Layout::Rgb => ExtendedColorType::Rgb8,
                Layout::Rgba => ExtendedColorType::Rgba8,
            };
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
                .write_image(&frame.pixels, frame.width, frame.height, color)
                .map_err(|e| failed(&e))?;
        }
        Format::Webp => {
            let q = f32::from(quality);
            let grey_as_rgb: Vec<u8>;
            let encoder = match frame.layout {
                Layout::Rgba => webp::Encoder::from_rgba(&frame.pixels, frame.width, frame.height),
                Layout::Rgb => webp::Encoder::from_rgb(&frame.pixels, frame.width, frame.height),
                Layout::Gray => {
                    grey_as_rgb = frame.pixels.iter().flat_map(|&v| [v, v, v]).collect();
                    webp::Encoder::from_rgb(&grey_as_rgb, frame.width, frame.height)
                }
            };
            let mem = encoder
                .encode_simple(false, q)
                .map_err(|e| failed(&format!("{e:?}")))?;
            out.extend_from_slice(&mem);
        }
    }
    Ok(out)
}

fn flatten_on_white(rgba: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgba.len() / 4 * 3);
    for px in rgba.chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transparent_becomes_white_and_opaque_stays() {
        assert_eq!(
            flatten_on_white(&[10, 20, 30, 0, 10, 20, 30, 255]),
            vec![255, 255, 255, 10, 20, 30]
        );
    }
}
