//! Bytes to pixels: sniff the format, refuse oversized pictures from the header, decode, and
//! normalise to one of three 8-bit layouts the resizer and encoders share.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::jpeg_check;
use crate::FnError;

/// The pixel layouts every later stage handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Gray,
    Rgb,
    Rgba,
}

impl Layout {
    pub fn channels(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Rgb => 3,
            Layout::Rgba => 4,
        }
    }
}

/// A decoded picture in its stored orientation.
#[derive(Debug)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub pixels: Vec<u8>,
    /// How to turn the stored pixels upright (EXIF orientation).
    pub orientation: Orientation,
    pub format: ImageFormat,
}

impl Picture {
    /// Width and height as displayed, after the orientation is applied.
    pub fn displayed(&self) -> (u32, u32) {
        if swaps_axes(self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

pub fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

pub fn format_name(f: ImageFormat) -> &'static str {
    f.extensions_str().first().copied().unwrap_or("unknown")
}

/// Width and height as stored, read from the header alone.
pub fn dimensions(data: &[u8]) -> Result<(u32, u32), FnError> {
    let format = image::guess_format(data).map_err(|_| FnError::bad_input("not an image"))?;
    ImageReader::with_format(Cursor::new(data), format)
        .into_dimensions()
        .map_err(|e| undecodable(format, e))
}

/// Decode `data`, refusing anything over `max_pixels` before the pixels are allocated.
pub fn decode(data: &[u8], max_pixels: u64) -> Result<Picture, FnError> {
    if data.is_empty() {
        return Err(FnError::bad_input("the input is empty (0 bytes)"));
    }
    let format = match image::guess_format(data) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => f,
        Ok(other) => {
            return Err(FnError::bad_input(format!(
                "{} images are not supported: send JPEG, PNG, WebP or GIF",
                format_name(other)
            )));
        }
        Err(_) => {
            return Err(FnError::bad_input(
                "not an image: the content is not JPEG, PNG, WebP or GIF",
            ));
        }
    };
    if format == ImageFormat::Jpeg {
        jpeg_check::check_complete(data).map_err(FnError::bad_input)?;
    }
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    // Room for the largest accepted picture at 16 bits per channel with alpha, and no more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| undecodable(format, e))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(FnError::bad_input(format!(
            "the image is {w}x{h} ({} megapixels), over the limit of {} megapixels",
            pixels / 1_000_000,
            max_pixels / 1_000_000
        )));
    }
    if w == 0 || h == 0 {
        return Err(FnError::bad_input(format!(
            "the image has no pixels ({w}x{h})"
        )));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| undecodable(format, e))?;
    let (layout, pixels) = normalise(img);
    Ok(Picture {
        width: w,
        height: h,
        layout,
        pixels,
        orientation,
        format,
    })
}

fn undecodable(format: ImageFormat, e: image::ImageError) -> FnError {
    let what = match &e {
        image::ImageError::Limits(_) => {
            "is too large to decode within the memory limit".to_string()
        }
        image::ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "stops before its end (truncated file)".to_string()
        }
        _ => format!("could not be decoded: {e}"),
    };
    FnError::bad_input(format!(
        "the {} image {what}",
        format_name(format).to_uppercase()
    ))
}

fn normalise(img: DynamicImage) -> (Layout, Vec<u8>) {
    match img {
        DynamicImage::ImageLuma8(b) => (Layout::Gray, b.into_raw()),
        DynamicImage::ImageRgb8(b) => (Layout::Rgb, b.into_raw()),
        DynamicImage::ImageRgba8(b) => (Layout::Rgba, b.into_raw()),
        DynamicImage::ImageLuma16(_) => (Layout::Gray, img.to_luma8().into_raw()),
        DynamicImage::ImageRgb16(_) | DynamicImage::ImageRgb32F(_) => {
            (Layout::Rgb, img.to_rgb8().into_raw())
        }
        _ => (Layout::Rgba, img.to_rgba8().into_raw()),
    }
}
