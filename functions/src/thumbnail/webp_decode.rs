//! WebP decoding through libwebp: several times faster than the pure-Rust decoder, and it can
//! scale while decoding (area averaging in its output stage), which is libvips' shrink-on-load
//! for WebP. Still pictures only; animations go to the general decoder, which takes frame one.

use libwebp_sys as sys;

use super::decode::Layout;

/// What the bitstream header says.
pub struct Features {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub animated: bool,
    /// VP8L: decoded whole, in 32-bit pixels, before any scaling.
    pub lossless: bool,
}

pub fn features(data: &[u8]) -> Option<Features> {
    // SAFETY: zeroed is a valid bit pattern for this plain C struct; libwebp reads `data` only
    // within `data.len()` and writes only into `f`.
    let mut f: sys::WebPBitstreamFeatures = unsafe { std::mem::zeroed() };
    let status = unsafe { sys::WebPGetFeatures(data.as_ptr(), data.len(), &mut f) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK || f.width <= 0 || f.height <= 0 {
        return None;
    }
    Some(Features {
        width: f.width as u32,
        height: f.height as u32,
        has_alpha: f.has_alpha != 0,
        animated: f.has_animation != 0,
        lossless: f.format == 2,
    })
}

/// Decode a still WebP to `size` (its own size, or smaller to scale while decoding).
pub fn decode(data: &[u8], f: &Features, size: (u32, u32)) -> Result<(Layout, Vec<u8>), String> {
    let (layout, mode) = if f.has_alpha {
        (Layout::Rgba, sys::WEBP_CSP_MODE::MODE_RGBA)
    } else {
        (Layout::Rgb, sys::WEBP_CSP_MODE::MODE_RGB)
    };
    let (w, h) = (size.0.max(1), size.1.max(1));
    let stride = w as usize * layout.channels();
    let mut pixels = vec![0u8; stride * h as usize];
    // SAFETY: the config is initialised by libwebp itself; the output points at `pixels`, which
    // outlives the call and whose length and stride are given, so libwebp writes only inside it.
    unsafe {
        let mut config: sys::WebPDecoderConfig = std::mem::zeroed();
        if !sys::WebPInitDecoderConfig(&mut config) {
            return Err("libwebp version mismatch".into());
        }
        if (w, h) != (f.width, f.height) {
            config.options.use_scaling = 1;
            config.options.scaled_width = w as i32;
            config.options.scaled_height = h as i32;
        }
        config.output.colorspace = mode;
        config.output.is_external_memory = 1;
        config.output.u.RGBA = sys::WebPRGBABuffer {
            rgba: pixels.as_mut_ptr(),
            stride: stride as i32,
            size: pixels.len(),
        };
        let status = sys::WebPDecode(data.as_ptr(), data.len(), &mut config);
        sys::WebPFreeDecBuffer(&mut config.output);
        if status != sys::VP8StatusCode::VP8_STATUS_OK {
            return Err(format!("libwebp: {status:?}"));
        }
    }
    Ok((layout, pixels))
}
