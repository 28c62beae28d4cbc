//! The `thumbnail` function: one decode per input serves every requested width.

mod decode;
mod encode;
mod jpeg_markers;
mod params;
mod quality;
mod resize;
mod turbo;
mod webp_decode;

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::json;

pub use decode::{Allowance, Layout, Picture, decode, dimensions, most_reserved};
pub(crate) use encode::encode;
pub use resize::{Frame, shrink, target_size, upright};

const LANCZOS: fast_image_resize::FilterType = fast_image_resize::FilterType::Lanczos3;
pub use params::{Chroma, Format, MAX_SIZE, ThumbnailParams};
pub use quality::psnr;

use crate::{Artifact, ExecCtx, FnError, Function, Input, Limits, Output};

pub struct Thumbnail {
    params: ThumbnailParams,
}

/// Scratch a worker thread's resizer may keep between calls: a 12-megapixel photo's, not the
/// hundreds of megabytes one huge picture needed (kept, they would never return to the system).
const KEEP_SCRATCH: usize = 64 << 20;

thread_local! {
    // A resizer keeps scratch buffers between calls; one per worker thread avoids reallocating.
    static RESIZER: RefCell<fast_image_resize::Resizer> = RefCell::new(fast_image_resize::Resizer::new());
}

impl Thumbnail {
    pub fn new(params: ThumbnailParams) -> Result<Self, (&'static str, String)> {
        params.validate()?;
        Ok(Thumbnail { params })
    }

    pub fn params(&self) -> &ThumbnailParams {
        &self.params
    }

    /// Thumbnail one input, checking the deadline between stages.
    pub fn run_one(&self, input: &Input, ctx: &ExecCtx, i: usize) -> Result<Output, FnError> {
        let p = &self.params;
        let largest = p.sizes.iter().copied().max().filter(|_| !p.upscale);
        let pic = decode(&input.bytes, &ctx.allowance(i, p.max_pixels), largest)?;
        let displayed = pic.displayed();
        // Largest first, so that a smaller size can be made from a larger one that is at least
        // twice its width (as good as from the original, and far less work).
        let mut order: Vec<usize> = (0..p.sizes.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(p.sizes[k]));
        let mut made: Vec<Option<(Artifact, serde_json::Value)>> = vec![None; p.sizes.len()];
        // The last size made, with its displayed width.
        let mut previous: Option<(Picture, u32)> = None;
        for k in order {
            ctx.check(i)?;
            let size = p.sizes[k];
            let (tw, th) = resize::target_size(displayed, size, p.upscale);
            check_output(p.format, tw, th, p.max_pixels)?;
            let from = match &previous {
                Some((prev, prev_w)) if *prev_w >= tw.saturating_mul(2) => prev,
                _ => &pic,
            };
            let small = RESIZER.with(|cell| match cell.try_borrow_mut() {
                Ok(mut r) => {
                    let small = resize::shrink(&mut r, from, (tw, th), LANCZOS);
                    if r.size_of_internal_buffers() > KEEP_SCRATCH {
                        r.reset_internal_buffers();
                    }
                    small
                }
                // In use further up this thread's stack (a re-entrant call, as rayon work
                // stealing inside a resize once caused): give this call its own.
                Err(_) => resize::shrink(
                    &mut fast_image_resize::Resizer::new(),
                    from,
                    (tw, th),
                    LANCZOS,
                ),
            })?;
            let frame = resize::upright(&small);
            let bytes = encode::encode(&frame, p.format, p.quality, p.chroma)?;
            let name = format!("{size}.{}", p.format.extension());
            let info = json!({
                "name": name, "size": size, "width": frame.width, "height": frame.height,
                "bytes": bytes.len(),
            });
            let artifact = Artifact {
                name,
                content_type: p.format.content_type().to_string(),
                bytes,
                vars: BTreeMap::from([("size".to_string(), size.to_string())]),
                placement: Default::default(),
            };
            made[k] = Some((artifact, info));
            drop(frame);
            previous = Some((small, tw));
        }
        let (artifacts, made): (Vec<Artifact>, Vec<serde_json::Value>) =
            made.into_iter().flatten().unzip();
        let summary = json!({
            "input": {
                "format": decode::format_name(pic.format),
                "width": displayed.0,
                "height": displayed.1,
                "orientation": pic.orientation.to_exif(),
            },
            "thumbnails": made,
        });
        Ok(Output { artifacts, summary })
    }
}

/// Refuse an output the encoder cannot hold, or one over the pixel limit (a very thin picture
/// asked at a large width), before any pixels are allocated for it.
fn check_output(format: Format, w: u32, h: u32, max_pixels: u64) -> Result<(), FnError> {
    let side = format.max_side();
    if w > side || h > side {
        return Err(FnError::bad_input(format!(
            "the thumbnail would be {w}x{h}, over {}'s limit of {side} pixels a side",
            format.extension().to_uppercase()
        )));
    }
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(FnError::bad_input(format!(
            "the thumbnail would be {w}x{h}, over the limit of {} megapixels",
            max_pixels / 1_000_000
        )));
    }
    Ok(())
}

impl Function for Thumbnail {
    fn kind(&self) -> &'static str {
        "thumbnail"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: 64,
            gpu_capable: false,
            streams_input: false,
            max_decode_bytes: decode::most_reserved(self.params.max_pixels),
        }
    }

    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        ctx.par_each(batch, |input, i| self.run_one(input, ctx, i))
    }
}
