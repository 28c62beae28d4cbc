//! Resizing with fast_image_resize (SIMD, Lanczos3, alpha-aware), then turning the small result
//! upright: rotating after the resize moves far fewer pixels than rotating the full picture.

use std::borrow::Cow;
use std::ops::Range;

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{PixelType, U8, U8x3, U8x4};
use fast_image_resize::{FilterType, PixelTrait, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

use super::decode::{Layout, Picture, swaps_axes};
use crate::FnError;

/// Pixels in display orientation, ready to encode; borrowed when no turn was needed.
#[derive(Debug)]
pub struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub pixels: Cow<'a, [u8]>,
}

/// The displayed size of the thumbnail for a requested width.
pub fn target_size(displayed: (u32, u32), width: u32, upscale: bool) -> (u32, u32) {
    let (dw, dh) = displayed;
    let tw = if upscale { width } else { width.min(dw) };
    let th = ((f64::from(dh) * f64::from(tw) / f64::from(dw)).round() as u32).max(1);
    (tw, th)
}

/// The size, in stored orientation, of the resize that measures `displayed` once upright.
pub fn stored_size(pic: &Picture, displayed: (u32, u32)) -> (u32, u32) {
    if swaps_axes(pic.orientation) {
        (displayed.1, displayed.0)
    } else {
        displayed
    }
}

/// Resize `pic` so that, once upright, it measures `displayed` (width, height). The result stays
/// in stored orientation, as a picture that smaller sizes can in turn be made from.
pub fn shrink(
    resizer: &mut Resizer,
    pic: &Picture,
    displayed: (u32, u32),
    filter: FilterType,
) -> Result<Picture, FnError> {
    let (w, h) = stored_size(pic, displayed);
    let pixels = shrink_rows(resizer, pic, (w, h), 0..h, filter)?;
    Ok(resized(pic, (w, h), pixels))
}

/// Rows `rows` of `pic` resized to `size` (stored orientation): strips made apart and joined in
/// order are the whole resize, as each output row's filter reaches into the whole source.
pub fn shrink_rows(
    resizer: &mut Resizer,
    pic: &Picture,
    size: (u32, u32),
    rows: Range<u32>,
    filter: FilterType,
) -> Result<Vec<u8>, FnError> {
    match pic.layout {
        Layout::Gray => resize_typed::<U8>(resizer, pic, size, rows, filter),
        Layout::Rgb => resize_typed::<U8x3>(resizer, pic, size, rows, filter),
        Layout::Rgba => resize_typed::<U8x4>(resizer, pic, size, rows, filter),
    }
}

/// The picture made of `pixels`, `size` in stored orientation, resized from `pic`.
pub fn resized(pic: &Picture, (w, h): (u32, u32), pixels: Vec<u8>) -> Picture {
    Picture {
        width: w,
        height: h,
        pixels,
        exact: (f64::from(w), f64::from(h)),
        held: None,
        ..*pic
    }
}

/// The typed entry point compiles a quarter as much code as the generic one.
fn resize_typed<P: PixelTrait>(
    resizer: &mut Resizer,
    pic: &Picture,
    (w, h): (u32, u32),
    rows: Range<u32>,
    filter: FilterType,
) -> Result<Vec<u8>, FnError> {
    let internal = |what: &str| FnError::transient(format!("resize failed: {what}"));
    let src = TypedImageRef::<P>::from_buffer(pic.width, pic.height, &pic.pixels)
        .map_err(|e| internal(&e.to_string()))?;
    let n = rows.end.saturating_sub(rows.start);
    let mut buf = vec![0u8; w as usize * n as usize * pic.layout.channels()];
    let mut dst =
        TypedImage::<P>::from_buffer(w, n, &mut buf).map_err(|e| internal(&e.to_string()))?;
    // Only the exact region of a scaled decode maps onto the full picture; a strip maps onto
    // its share of it.
    let (top, bottom) = if rows == (0..h) {
        (0.0, pic.exact.1)
    } else {
        let at = |row: u32| pic.exact.1 * f64::from(row) / f64::from(h);
        (at(rows.start), at(rows.end))
    };
    let opts = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(filter))
        .crop(0.0, top, pic.exact.0, bottom - top);
    resizer
        .resize_typed(&src, &mut dst, &opts)
        .map_err(|e| internal(&e.to_string()))?;
    debug_assert_eq!(P::pixel_type(), pixel_type(pic.layout));
    Ok(buf)
}

fn pixel_type(layout: Layout) -> PixelType {
    match layout {
        Layout::Gray => PixelType::U8,
        Layout::Rgb => PixelType::U8x3,
        Layout::Rgba => PixelType::U8x4,
    }
}

/// The picture turned upright (a copy only when it has to turn).
pub fn upright(pic: &Picture) -> Frame<'_> {
    if pic.orientation == Orientation::NoTransforms {
        let (width, height, layout) = (pic.width, pic.height, pic.layout);
        return Frame {
            width,
            height,
            layout,
            pixels: Cow::Borrowed(&pic.pixels),
        };
    }
    let (w, h, raw) = (pic.width, pic.height, pic.pixels.clone());
    // The buffer was made for these dimensions, so from_raw cannot fail.
    let mut img = match pic.layout {
        Layout::Gray => DynamicImage::ImageLuma8(GrayImage::from_raw(w, h, raw).unwrap()),
        Layout::Rgb => DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, raw).unwrap()),
        Layout::Rgba => DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, raw).unwrap()),
    };
    img.apply_orientation(pic.orientation);
    let (width, height) = (img.width(), img.height());
    Frame {
        width,
        height,
        layout: pic.layout,
        pixels: Cow::Owned(img.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_aspect_and_never_upscales_unless_asked() {
        assert_eq!(target_size((1920, 1440), 256, false), (256, 192));
        assert_eq!(target_size((451, 300), 1024, false), (451, 300));
        assert_eq!(target_size((451, 300), 902, true), (902, 600));
        assert_eq!(target_size((5312, 200), 16, false), (16, 1)); // never zero rows
    }
}
