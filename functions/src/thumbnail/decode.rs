//! Bytes to pixels: sniff the format, refuse oversized pictures from the header, decode, and
//! normalise to one of three 8-bit layouts the resizer and encoders share.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use super::{jpeg_markers, turbo, webp_decode};
use crate::FnError;
use crate::memory::{DecodeMemory, Reservation};
use weir_models::cores::Cores;

/// What one decode may take: pictures up to `max_pixels`, and memory from the process's decode
/// budget, waited for until `deadline`.
#[derive(Debug, Clone)]
pub struct Allowance {
    pub max_pixels: u64,
    pub memory: Arc<DecodeMemory>,
    pub deadline: Instant,
    /// The caller turns the picture into RGB (classify): a grey one then needs a copy.
    pub rgb_copy: bool,
    /// The ledger whose idle cores may help decode (a JPEG in two bands); `None`: this thread
    /// alone.
    pub cores: Option<&'static Cores>,
}

impl Allowance {
    /// The pixel limit alone, for direct calls (tests, benchmarks).
    pub fn pixels(max_pixels: u64) -> Self {
        Allowance {
            max_pixels,
            memory: DecodeMemory::unlimited(),
            deadline: crate::function::far(),
            rgb_copy: false,
            cores: None,
        }
    }

    /// Reserve what a `w`x`h` picture in `layout` holds at its peak: the 8-bit pixels; a second
    /// copy when there is alpha (the resizer premultiplies into scratch, classify drops the alpha
    /// into a copy) or when classify turns grey into RGB; and `extra`, what the decoder keeps
    /// beside them (a wider native buffer, a progressive JPEG's coefficients).
    fn reserve(&self, w: u32, h: u32, layout: Layout, extra: u64) -> Result<Reservation, FnError> {
        let pixels = bytes(w, h, layout);
        let copy = match layout {
            Layout::Rgba => pixels,
            Layout::Gray if self.rgb_copy => 3 * pixels,
            _ => 0,
        };
        let what = || format!("this {w}x{h} picture");
        self.memory
            .reserve(pixels + copy + extra, self.deadline, &what)
    }
}

/// What a decode of `max_pixels` may reserve at the most, for the start-up comparison with the
/// budget: 8-bit RGBA and its copy, 8 bytes a pixel.
pub fn most_reserved(max_pixels: u64) -> u64 {
    max_pixels.saturating_mul(8)
}

fn bytes(w: u32, h: u32, layout: Layout) -> u64 {
    u64::from(w) * u64::from(h) * layout.channels() as u64
}

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

/// A decoded picture in its stored orientation, possibly decoded at a reduced scale.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The pixel buffer's size (after any scaled decode).
    pub width: u32,
    pub height: u32,
    pub layout: Layout,
    pub pixels: Vec<u8>,
    /// How to turn the stored pixels upright (EXIF orientation).
    pub orientation: Orientation,
    pub format: ImageFormat,
    /// The full picture's size as stored, before any scaled decode.
    pub full: (u32, u32),
    /// The part of the buffer that holds the full picture: a scaled decode rounds its size up, so
    /// the last column and row may cover less than a whole pixel.
    pub exact: (f64, f64),
    /// The decode budget held for these pixels, given back when the last clone is dropped.
    pub held: Option<Arc<Reservation>>,
}

impl Picture {
    /// Width and height as displayed, after the orientation is applied.
    pub fn displayed(&self) -> (u32, u32) {
        let (w, h) = self.full;
        if swaps_axes(self.orientation) {
            (h, w)
        } else {
            (w, h)
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

/// Decode `data`, refusing anything over the allowance's pixels and reserving its memory before
/// the pixels are allocated. With `largest_width` (the widest thumbnail wanted, as displayed),
/// JPEGs decode at the smallest DCT scale that still leaves the resize a factor of two; `None`
/// decodes at full size.
pub fn decode(
    data: &[u8],
    allow: &Allowance,
    largest_width: Option<u32>,
) -> Result<Picture, FnError> {
    let max_pixels = allow.max_pixels;
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
        let stream = jpeg_markers::check_complete(data).map_err(FnError::bad_input)?;
        // The size limit first, so an oversized claim says so; then whether the data can fill it.
        if let Some(f) = stream.frame {
            check_size(f.width, f.height, max_pixels)?;
        }
        stream.check_fills().map_err(FnError::bad_input)?;
        if let Some(pic) = decode_turbo(data, allow, largest_width, stream.coefficient_bytes())? {
            return Ok(pic);
        }
    }
    if format == ImageFormat::WebP
        && let Some(pic) = decode_webp(data, allow, largest_width)?
    {
        return Ok(pic);
    }
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    // Room for the largest accepted picture at 16 bits per channel with alpha, and no more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| undecodable(format, e))?;
    let (w, h) = decoder.dimensions();
    check_size(w, h, max_pixels)?;
    // As `normalise` will leave it.
    let layout = match decoder.color_type().channel_count() {
        1 => Layout::Gray,
        3 => Layout::Rgb,
        _ => Layout::Rgba,
    };
    // A decoder wider than 8 bits fills its own buffer, converted while both exist.
    let native = decoder.total_bytes();
    let wider = if native > bytes(w, h, layout) {
        native
    } else {
        0
    };
    let held = allow.reserve(w, h, layout, wider)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(decoder).map_err(|e| undecodable(format, e))?;
    let (layout, pixels) = normalise(img);
    let (full, exact) = ((w, h), (f64::from(w), f64::from(h)));
    Ok(Picture {
        width: w,
        height: h,
        layout,
        pixels,
        orientation,
        format,
        full,
        exact,
        held: Some(Arc::new(held)),
    })
}

fn check_size(w: u32, h: u32, max_pixels: u64) -> Result<(), FnError> {
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
    Ok(())
}

/// The libwebp path for still pictures; `None` hands animations and failures to the general
/// decoder. Scales while decoding to twice the widest thumbnail, leaving Lanczos the last step.
fn decode_webp(
    data: &[u8],
    allow: &Allowance,
    largest_width: Option<u32>,
) -> Result<Option<Picture>, FnError> {
    let Some(f) = webp_decode::features(data) else {
        return Ok(None);
    };
    if f.animated {
        return Ok(None);
    }
    check_size(f.width, f.height, allow.max_pixels)?;
    let orientation = image::codecs::webp::WebPDecoder::new(Cursor::new(data))
        .and_then(|mut d| d.orientation())
        .unwrap_or(Orientation::NoTransforms);
    let shown_w = if swaps_axes(orientation) {
        f.height
    } else {
        f.width
    };
    let size = match largest_width {
        Some(t) if u64::from(t) * 4 <= u64::from(shown_w) => {
            let ratio = f64::from(t) * 2.0 / f64::from(shown_w);
            let scaled = |v: u32| ((f64::from(v) * ratio).round() as u32).max(1);
            (scaled(f.width), scaled(f.height))
        }
        _ => (f.width, f.height),
    };
    let shape = if f.has_alpha {
        Layout::Rgba
    } else {
        Layout::Rgb
    };
    // The lossless decoder works on the whole picture in 32-bit pixels, whatever the scale.
    let whole = if f.lossless {
        4 * u64::from(f.width) * u64::from(f.height)
    } else {
        0
    };
    let held = allow.reserve(size.0, size.1, shape, whole)?;
    let Ok((layout, pixels)) = webp_decode::decode(data, &f, size) else {
        return Ok(None);
    };
    Ok(Some(Picture {
        width: size.0,
        height: size.1,
        layout,
        pixels,
        orientation,
        format: ImageFormat::WebP,
        full: (f.width, f.height),
        exact: (f64::from(size.0), f64::from(size.1)),
        held: Some(Arc::new(held)),
    }))
}

/// The libjpeg-turbo path. `None` hands the file to the general decoder: CMYK and YCCK (which
/// libjpeg-turbo will not turn into RGB), and anything it fails on, so that a file it finds
/// fault with is judged by the same rules as before rather than refused outright — except data
/// that ends before the frame is full, which the general decoder would pad with grey.
fn decode_turbo(
    data: &[u8],
    allow: &Allowance,
    largest_width: Option<u32>,
    coefficients: u64,
) -> Result<Option<Picture>, FnError> {
    let Ok(header) = turbojpeg::read_header(data) else {
        return Ok(None);
    };
    if !turbo::handles(header.colorspace) {
        return Ok(None);
    }
    let (Ok(w), Ok(h)) = (u32::try_from(header.width), u32::try_from(header.height)) else {
        return Err(FnError::bad_input(
            "the JPEG's header gives an impossible size",
        ));
    };
    check_size(w, h, allow.max_pixels)?;
    let orientation = jpeg_markers::exif_orientation(data)
        .and_then(Orientation::from_exif)
        .unwrap_or(Orientation::NoTransforms);
    let shown_w = if swaps_axes(orientation) { h } else { w };
    let scale = match largest_width {
        Some(t) if t < shown_w => turbo::scale_for(shown_w, t),
        _ => turbojpeg::ScalingFactor::ONE,
    };
    let scaled = header.scaled(scale);
    let (sw, sh) = (scaled.width as u32, scaled.height as u32);
    let held = allow.reserve(sw, sh, turbo::layout(header.colorspace), coefficients)?;
    let (sw, sh, layout, pixels) = match turbo::decode(data, &header, scale, allow.cores) {
        Ok(decoded) => decoded,
        Err(e) if turbo::is_premature_end(&e) => {
            return Err(FnError::bad_input(format!(
                "the JPEG's image data ends before its {w}x{h} pixels are filled \
                 (corrupt data or a tampered size header): {e}"
            )));
        }
        Err(_) => return Ok(None),
    };
    let ratio = scale.num() as f64 / scale.denom() as f64;
    let exact = (f64::from(w) * ratio, f64::from(h) * ratio);
    Ok(Some(Picture {
        width: sw,
        height: sh,
        layout,
        pixels,
        orientation,
        format: ImageFormat::Jpeg,
        full: (w, h),
        exact,
        held: Some(Arc::new(held)),
    }))
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
