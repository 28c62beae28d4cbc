//! Decoded frames to upright RGB at the output size, and to the small grey grid scene mode
//! compares, with swscale. The source's colour matrix and range are honoured (video is BT.709
//! limited range, JPEG wants full range): colours match what a player shows.

use std::borrow::Cow;

use ffmpeg::format::Pixel;
use ffmpeg::software::scaling::{Context as Scaler, Flags};
use ffmpeg::{color, ffi};
use ffmpeg_next as ffmpeg;
use image::RgbImage;

use crate::FnError;
use crate::thumbnail::{Frame, Layout};

/// The scalers of one video, made again only when the frames' size or format changes.
#[derive(Default)]
pub struct Converter {
    rgb: Option<(Shape, Scaler)>,
    grey: Option<(Shape, Scaler)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Shape {
    from: (Pixel, u32, u32),
    to: (u32, u32),
}

impl Converter {
    /// `frame` scaled to `size` (given upright) and turned `rotation` degrees clockwise.
    pub fn upright_rgb(
        &mut self,
        frame: &ffmpeg::frame::Video,
        size: (u32, u32),
        rotation: u32,
    ) -> Result<Frame<'static>, FnError> {
        let coded = if rotation % 180 == 90 {
            (size.1, size.0)
        } else {
            size
        };
        let scaler = scaler(&mut self.rgb, frame, Pixel::RGB24, coded, Flags::AREA)?;
        let (w, h, pixels) = run(scaler, frame, Pixel::RGB24, coded, 3)?;
        let img = RgbImage::from_raw(w, h, pixels)
            .ok_or_else(|| FnError::transient("the converted picture has the wrong size"))?;
        let img = match rotation {
            90 => image::imageops::rotate90(&img),
            180 => image::imageops::rotate180(&img),
            270 => image::imageops::rotate270(&img),
            _ => img,
        };
        Ok(Frame {
            width: img.width(),
            height: img.height(),
            layout: Layout::Rgb,
            pixels: Cow::Owned(img.into_raw()),
        })
    }

    /// The frame reduced to a `grid`-sized grey picture.
    pub fn grey_grid(
        &mut self,
        frame: &ffmpeg::frame::Video,
        grid: (u32, u32),
    ) -> Result<Vec<u8>, FnError> {
        let scaler = scaler(&mut self.grey, frame, Pixel::GRAY8, grid, Flags::AREA)?;
        Ok(run(scaler, frame, Pixel::GRAY8, grid, 1)?.2)
    }
}

fn scaler<'a>(
    slot: &'a mut Option<(Shape, Scaler)>,
    frame: &ffmpeg::frame::Video,
    to: Pixel,
    size: (u32, u32),
    flags: Flags,
) -> Result<&'a mut Scaler, FnError> {
    let shape = Shape {
        from: (frame.format(), frame.width(), frame.height()),
        to: size,
    };
    if slot.as_ref().is_none_or(|(s, _)| *s != shape) {
        let mut s = Scaler::get(
            frame.format(),
            frame.width(),
            frame.height(),
            to,
            size.0,
            size.1,
            flags,
        )
        .map_err(|e| {
            FnError::bad_input(format!(
                "cannot convert {:?} {}x{} pictures: {e}",
                frame.format(),
                frame.width(),
                frame.height()
            ))
        })?;
        set_colours(&mut s, frame);
        *slot = Some((shape, s));
    }
    Ok(&mut slot.as_mut().expect("set above").1)
}

/// Tells swscale the source's matrix and range, and asks for full-range output.
fn set_colours(s: &mut Scaler, frame: &ffmpeg::frame::Video) {
    let matrix = match frame.color_space() {
        color::Space::BT709 => ffi::SWS_CS_ITU709,
        color::Space::BT2020NCL | color::Space::BT2020CL => ffi::SWS_CS_BT2020,
        color::Space::SMPTE240M => ffi::SWS_CS_SMPTE240M,
        color::Space::FCC => ffi::SWS_CS_FCC,
        // Untagged: HD and larger is BT.709 by convention, smaller BT.601.
        color::Space::Unspecified if frame.height() >= 720 => ffi::SWS_CS_ITU709,
        _ => ffi::SWS_CS_DEFAULT,
    };
    let full_range = frame.color_range() == color::Range::JPEG
        || matches!(
            frame.format(),
            Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P
        );
    // SAFETY: the scaler is valid; the coefficient tables are FFmpeg's static ones.
    unsafe {
        ffi::sws_setColorspaceDetails(
            s.as_mut_ptr(),
            ffi::sws_getCoefficients(matrix),
            i32::from(full_range),
            ffi::sws_getCoefficients(ffi::SWS_CS_DEFAULT),
            1,
            0,
            1 << 16,
            1 << 16,
        );
    }
}

/// Runs the scaler and copies the picture out without row padding.
fn run(
    s: &mut Scaler,
    frame: &ffmpeg::frame::Video,
    to: Pixel,
    (w, h): (u32, u32),
    channels: usize,
) -> Result<(u32, u32, Vec<u8>), FnError> {
    let mut out = ffmpeg::frame::Video::new(to, w, h);
    s.run(frame, &mut out)
        .map_err(|e| FnError::bad_input(format!("cannot convert a picture: {e}")))?;
    let row = w as usize * channels;
    let stride = out.stride(0);
    let data = out.data(0);
    let mut pixels = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        pixels.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    Ok((w, h, pixels))
}
