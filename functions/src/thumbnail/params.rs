//! The `thumbnail` kind's `params`, as written in a function spec.

use serde::Deserialize;

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[serde(alias = "jpg")]
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }
    /// The largest width or height the format can store.
    pub fn max_side(self) -> u32 {
        match self {
            Format::Jpeg => 65_535,
            Format::Png => 1 << 24,
            Format::Webp => 16_383,
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }
}

/// JPEG chroma subsampling. 4:2:0 (the default, as libvips, Pillow and sharp use below q90)
/// halves colour resolution for smaller files; 4:4:4 keeps it, for sharper colour edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum Chroma {
    #[default]
    #[serde(rename = "4:2:0")]
    Sub420,
    #[serde(rename = "4:4:4")]
    Full444,
}

/// `params` of a `thumbnail` function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailParams {
    /// Output widths in pixels; the height follows the aspect ratio.
    #[serde(alias = "widths")]
    pub sizes: Vec<u32>,
    #[serde(default = "default_format")]
    pub format: Format,
    /// Encoder quality 1..=100 (JPEG and WebP; ignored by PNG, which is lossless).
    #[serde(default = "default_quality")]
    pub quality: u8,
    /// JPEG only.
    #[serde(default)]
    pub chroma: Chroma,
    /// Produce widths above the image's own. Off: such a size comes out at the image's width.
    #[serde(default)]
    pub upscale: bool,
    /// Largest picture accepted, in pixels, read from the header before any decoding.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

fn default_format() -> Format {
    Format::Jpeg
}
fn default_quality() -> u8 {
    80
}
fn default_max_pixels() -> u64 {
    100_000_000
}

/// The largest width a thumbnail may ask for. The height follows the picture's aspect, so the
/// output is also checked against the format's limits and `max_pixels` before it is made.
pub const MAX_SIZE: u32 = 16_384;

impl ThumbnailParams {
    pub fn new(sizes: Vec<u32>, format: Format, quality: u8) -> Self {
        ThumbnailParams {
            sizes,
            format,
            quality,
            chroma: Chroma::default(),
            upscale: false,
            max_pixels: default_max_pixels(),
        }
    }

    /// Checks what serde cannot. Returns (field, what was expected) on the first problem.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.sizes.is_empty() {
            return Err(("sizes", "at least one width".into()));
        }
        if let Some(s) = self.sizes.iter().find(|s| **s == 0 || **s > MAX_SIZE) {
            return Err(("sizes", format!("widths from 1 to {MAX_SIZE}, got {s}")));
        }
        let mut seen = self.sizes.clone();
        seen.sort_unstable();
        if seen.windows(2).any(|w| w[0] == w[1]) {
            return Err(("sizes", "each width once".into()));
        }
        if !(1..=100).contains(&self.quality) {
            return Err((
                "quality",
                format!("a number from 1 to 100, got {}", self.quality),
            ));
        }
        if self.max_pixels == 0 {
            return Err(("max_pixels", "a positive number of pixels".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let ok = ThumbnailParams::new(vec![256, 1024], Format::Jpeg, 80);
        assert!(ok.validate().is_ok());
        let mut p = ok.clone();
        p.sizes = vec![];
        assert_eq!(p.validate().unwrap_err().0, "sizes");
        p.sizes = vec![256, 256];
        assert_eq!(p.validate().unwrap_err().0, "sizes");
        p.sizes = vec![0];
        assert_eq!(p.validate().unwrap_err().0, "sizes");
        let mut p = ok;
        p.quality = 0;
        assert_eq!(p.validate().unwrap_err().0, "quality");
    }
}
