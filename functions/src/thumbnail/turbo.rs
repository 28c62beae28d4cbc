//! libjpeg-turbo through `turbojpeg`: JPEG decoding at 1/2, 1/4 or 1/8 scale in the DCT domain
//! (shrink-on-load, as libvips does), and its SIMD encoder.

use turbojpeg::{Colorspace, Compressor, Image, PixelFormat, ScalingFactor, Subsamp};

use super::decode::Layout;
use super::params::Chroma;

/// The DCT scale for a picture `full` pixels wide whose largest thumbnail is `target` wide.
/// libvips' rule: leave at least a factor of two for the resize that follows, which keeps
/// the quality of a true Lanczos reduction (a tighter choice loses 4–10 dB for ~1 ms).
pub fn scale_for(full: u32, target: u32) -> ScalingFactor {
    let shrink = f64::from(full) / f64::from(target.max(1));
    if shrink >= 16.0 {
        ScalingFactor::ONE_EIGHTH
    } else if shrink >= 8.0 {
        ScalingFactor::ONE_QUARTER
    } else if shrink >= 4.0 {
        ScalingFactor::ONE_HALF
    } else {
        ScalingFactor::ONE
    }
}

/// Whether libjpeg-turbo can give RGB or grey for this colour space (CMYK and YCCK it cannot).
pub fn handles(colorspace: Colorspace) -> bool {
    matches!(
        colorspace,
        Colorspace::YCbCr | Colorspace::RGB | Colorspace::Gray
    )
}

/// The layout libjpeg-turbo decodes a colour space to (grey stays grey, the rest is RGB).
pub fn layout(colorspace: Colorspace) -> Layout {
    match colorspace {
        Colorspace::Gray => Layout::Gray,
        _ => Layout::Rgb,
    }
}

/// A decode at `scale`: (width, height, layout, pixels). With `cores`, a baseline picture is
/// decoded in two bands when one of them is idle (`super::bands`).
pub fn decode(
    data: &[u8],
    header: &turbojpeg::DecompressHeader,
    scale: ScalingFactor,
    cores: Option<&'static weir_models::cores::Cores>,
) -> Result<(u32, u32, Layout, Vec<u8>), String> {
    let layout = layout(header.colorspace);
    let format = match layout {
        Layout::Gray => PixelFormat::GRAY,
        _ => PixelFormat::RGB,
    };
    let scaled = header.scaled(scale);
    let job = super::bands::Job {
        data,
        scale,
        format,
        width: scaled.width,
        height: scaled.height,
    };
    let pixels = super::bands::decode(job, header, cores)?;
    let w = u32::try_from(scaled.width).map_err(|e| e.to_string())?;
    let h = u32::try_from(scaled.height).map_err(|e| e.to_string())?;
    Ok((w, h, layout, pixels))
}

/// libjpeg's warning for entropy data that runs out before the last block: the rest would be
/// grey, so the picture is not what the file claims to be.
pub fn is_premature_end(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("premature end of data segment") || e.contains("premature end of jpeg file")
}

/// Baseline JPEG at `quality`; colour at 4:2:0 or 4:4:4 as asked (libjpeg-turbo's own defaults,
/// q95 and 4:4:4, are never used).
pub fn encode(
    pixels: &[u8],
    width: u32,
    height: u32,
    layout: Layout,
    quality: u8,
    chroma: Chroma,
) -> Result<Vec<u8>, String> {
    let colour = match chroma {
        Chroma::Sub420 => Subsamp::Sub2x2,
        Chroma::Full444 => Subsamp::None,
    };
    let (format, subsamp) = match layout {
        Layout::Gray => (PixelFormat::GRAY, Subsamp::Gray),
        Layout::Rgb => (PixelFormat::RGB, colour),
        Layout::Rgba => (PixelFormat::RGBA, colour),
    };
    let mut c = Compressor::new().map_err(|e| e.to_string())?;
    c.set_quality(i32::from(quality))
        .map_err(|e| e.to_string())?;
    c.set_subsamp(subsamp).map_err(|e| e.to_string())?;
    let (w, h) = (width as usize, height as usize);
    let image = Image {
        pixels,
        width: w,
        pitch: w * format.size(),
        height: h,
        format,
    };
    c.compress_to_vec(image).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_leaves_at_least_two_for_the_resize() {
        assert_eq!(scale_for(5312, 256), ScalingFactor::ONE_EIGHTH); // 20.8
        assert_eq!(scale_for(5312, 1024), ScalingFactor::ONE_HALF); // 5.2
        assert_eq!(scale_for(1920, 256), ScalingFactor::ONE_HALF); // 7.5
        assert_eq!(scale_for(1920, 1024), ScalingFactor::ONE); // 1.9
        assert_eq!(scale_for(2048, 256), ScalingFactor::ONE_QUARTER); // exactly 8
        assert_eq!(scale_for(4096, 256), ScalingFactor::ONE_EIGHTH); // exactly 16
    }
}
