//! The `thumbnail` function: one decode per input serves every requested width.

mod bands;
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
use std::sync::Arc;

use serde_json::json;

pub use decode::{Allowance, Layout, Picture, decode, dimensions, most_reserved};
pub(crate) use encode::encode;
pub use resize::{Frame, shrink, shrink_rows, stored_size, target_size, upright};

const LANCZOS: fast_image_resize::FilterType = fast_image_resize::FilterType::Lanczos3;
pub use params::{Chroma, Format, MAX_SIZE, ThumbnailParams};
pub use quality::psnr;

use crate::{Artifact, Early, ExecCtx, FnError, Function, Input, Limits, Output, spread};

pub struct Thumbnail {
    params: ThumbnailParams,
}

/// Scratch a worker thread's resizer may keep between calls: a 12-megapixel photo's, not the
/// hundreds of megabytes one huge picture needed (kept, they would never return to the system).
const KEEP_SCRATCH: usize = 64 << 20;

/// The most strips one resize is cut into, and the output pixels that earn one: each strip
/// computes its own filter weights and a few rows more, paid on a busy machine too (two strips
/// cost 1–2% of a photo's time on one core, four cost 4%: `benches/RESULTS.md`).
const MAX_STRIPS: u32 = 2;
const STRIP_PIXELS: u64 = 256 * 1024;

thread_local! {
    // A resizer keeps scratch buffers between calls; one per worker thread avoids reallocating.
    static RESIZER: RefCell<fast_image_resize::Resizer> = RefCell::new(fast_image_resize::Resizer::new());
}

/// `f` with this thread's resizer, which then drops scratch over `KEEP_SCRATCH`.
fn with_resizer<T>(f: impl FnOnce(&mut fast_image_resize::Resizer) -> T) -> T {
    RESIZER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut r) => {
            let out = f(&mut r);
            if r.size_of_internal_buffers() > KEEP_SCRATCH {
                r.reset_internal_buffers();
            }
            out
        }
        // In use further up this thread's stack (a re-entrant call, as rayon work stealing
        // inside a resize once caused): give this call its own.
        Err(_) => f(&mut fast_image_resize::Resizer::new()),
    })
}

/// One size to make, in the order sizes are made: largest first, so that a smaller size can be
/// made from the one before it when that is at least twice its width (as good as from the
/// original, and far less work).
#[derive(Debug, Clone, Copy)]
struct Step {
    /// Where the size is in the params' list (outputs keep that order).
    k: usize,
    size: u32,
    /// The thumbnail's displayed width and height.
    target: (u32, u32),
    from_previous: bool,
}

/// What encoding needs, copied into each piece of work.
#[derive(Debug, Clone, Copy)]
struct Encoding {
    format: Format,
    quality: u8,
    chroma: Chroma,
}

type Made = Vec<(usize, Option<Artifact>, serde_json::Value)>;

impl Thumbnail {
    pub fn new(params: ThumbnailParams) -> Result<Self, (&'static str, String)> {
        params.validate()?;
        Ok(Thumbnail { params })
    }

    pub fn params(&self) -> &ThumbnailParams {
        &self.params
    }

    /// Every size's step, refusing an output too large before any pixels are made.
    fn steps(&self, displayed: (u32, u32)) -> Result<Vec<Step>, FnError> {
        let p = &self.params;
        let mut order: Vec<usize> = (0..p.sizes.len()).collect();
        order.sort_by_key(|&k| std::cmp::Reverse(p.sizes[k]));
        let mut previous_width: Option<u32> = None;
        let mut steps = Vec::with_capacity(order.len());
        for k in order {
            let size = p.sizes[k];
            let target = resize::target_size(displayed, size, p.upscale);
            check_output(p.format, target.0, target.1, p.max_pixels)?;
            let from_previous = previous_width.is_some_and(|w| w >= target.0.saturating_mul(2));
            previous_width = Some(target.0);
            steps.push(Step {
                k,
                size,
                target,
                from_previous,
            });
        }
        Ok(steps)
    }

    /// Thumbnail one input, checking the deadline between stages. The decode is one core's
    /// work; on cores that are idle (`crate::spread`) the largest resize is cut into strips of
    /// rows, and its encode runs beside the smaller sizes. On a busy machine all of it runs here,
    /// one step after the other, and makes the same pixels.
    pub fn run_one(&self, input: &Input, ctx: &ExecCtx, i: usize) -> Result<Output, FnError> {
        let p = &self.params;
        let largest = p.sizes.iter().copied().max().filter(|_| !p.upscale);
        let pic = Arc::new(decode(
            &input.bytes,
            &ctx.allowance(i, p.max_pixels),
            largest,
        )?);
        let displayed = pic.displayed();
        let steps = self.steps(displayed)?;
        let Some((&first, rest)) = steps.split_first() else {
            return Err(FnError::bad_input("no thumbnail size was asked for"));
        };
        let deadline = ctx.deadline(i);
        crate::before(deadline)?;
        let big = Arc::new(shrink_in_strips(ctx, &pic, first.target)?);
        crate::before(deadline)?;
        let enc = Encoding {
            format: p.format,
            quality: p.quality,
            chroma: p.chroma,
        };
        // Each size is handed on as soon as it is encoded (`Early::offer`), smaller sizes first:
        // where outputs are written, the smallest is in the store while the largest is
        // still being encoded.
        let mut pieces: Vec<spread::Piece<Result<Made, FnError>>> = Vec::with_capacity(2);
        if !rest.is_empty() {
            let (rest, pic, big, early) =
                (rest.to_vec(), pic.clone(), big.clone(), input.early.clone());
            pieces.push(Box::new(move || {
                let mut made = Vec::with_capacity(rest.len());
                let mut previous = big;
                for step in rest {
                    crate::before(deadline)?;
                    let from = if step.from_previous { &previous } else { &pic };
                    let small = with_resizer(|r| resize::shrink(r, from, step.target, LANCZOS))?;
                    made.push(finish(step, &small, enc, early.as_ref())?);
                    previous = Arc::new(small);
                }
                Ok(made)
            }));
        }
        let (first_pic, early) = (big.clone(), input.early.clone());
        pieces.push(Box::new(move || {
            Ok(vec![finish(first, &first_pic, enc, early.as_ref())?])
        }));
        let pixels = u64::from(big.width) * u64::from(big.height);
        drop(big);
        let help = spread::Helpers::take(ctx.cores, pieces.len(), pixels);
        let mut made: Made = Vec::with_capacity(steps.len());
        for piece in help.run(pieces) {
            made.extend(piece?);
        }
        made.sort_by_key(|(k, ..)| *k);
        let (artifacts, made): (Vec<Option<Artifact>>, Vec<serde_json::Value>) =
            made.into_iter().map(|(_, a, info)| (a, info)).unzip();
        let artifacts = artifacts.into_iter().flatten().collect();
        let summary = json!({
            "input": {
                "format": decode::format_name(pic.format),
                "width": displayed.0,
                "height": displayed.1,
                "orientation": pic.orientation.to_exif(),
            },
            "thumbnails": made,
        });
        Ok(Output::new(artifacts, summary))
    }
}

/// How many strips of rows a resize to `w`x`h` is cut into, by its size alone: a strip's
/// fixed-point filter weights can round one level apart from the whole resize's, so a cut that
/// followed the load would make pixels that depend on it. Never with alpha: the resizer
/// premultiplies the whole source for each strip.
fn strips(layout: Layout, w: u32, h: u32) -> u32 {
    if layout == Layout::Rgba {
        return 1;
    }
    let by_size = (u64::from(w) * u64::from(h) / STRIP_PIXELS).min(u64::from(MAX_STRIPS)) as u32;
    // A strip of a few rows would redo most of its neighbours' filter rows.
    by_size.min(h / 32).max(1)
}

/// `pic` resized to `displayed` in strips of rows, run on the idle cores when there are some.
/// Each output row's filter reaches into the whole source, so the strips joined are the whole
/// resize within one level (`tests/thumbnail_spread.rs`). Joining copies the strips once.
fn shrink_in_strips(
    ctx: &ExecCtx,
    pic: &Arc<Picture>,
    displayed: (u32, u32),
) -> Result<Picture, FnError> {
    let (w, h) = resize::stored_size(pic, displayed);
    let n = strips(pic.layout, w, h);
    if n == 1 {
        return with_resizer(|r| resize::shrink(r, pic, displayed, LANCZOS));
    }
    let help = spread::Helpers::take(ctx.cores, n as usize, u64::from(w) * u64::from(h));
    let pieces: Vec<spread::Piece<Result<Vec<u8>, FnError>>> = (0..n)
        .map(|s| {
            let (pic, rows) = (pic.clone(), h * s / n..h * (s + 1) / n);
            Box::new(move || with_resizer(|r| resize::shrink_rows(r, &pic, (w, h), rows, LANCZOS)))
                as spread::Piece<_>
        })
        .collect();
    let mut pixels = Vec::with_capacity(w as usize * h as usize * pic.layout.channels());
    for strip in help.run(pieces) {
        pixels.extend_from_slice(&strip?);
    }
    Ok(resize::resized(pic, (w, h), pixels))
}

/// A made size, turned upright and encoded, with its line of the summary; the artifact is
/// handed on early where someone takes it (`None` here then).
fn finish(
    step: Step,
    small: &Picture,
    enc: Encoding,
    early: Option<&Early>,
) -> Result<(usize, Option<Artifact>, serde_json::Value), FnError> {
    let frame = resize::upright(small);
    let bytes = encode::encode(&frame, enc.format, enc.quality, enc.chroma)?;
    let name = format!("{}.{}", step.size, enc.format.extension());
    let info = json!({
        "name": name, "size": step.size, "width": frame.width, "height": frame.height,
        "bytes": bytes.len(),
    });
    let artifact = Artifact {
        name,
        content_type: enc.format.content_type().to_string(),
        bytes,
        vars: BTreeMap::from([("size".to_string(), step.size.to_string())]),
        placement: Default::default(),
    };
    Ok((step.k, Early::offer(early, artifact), info))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_follow_the_size_alone() {
        assert_eq!(
            strips(Layout::Rgb, 1024, 768),
            2,
            "the example's large size"
        );
        assert_eq!(strips(Layout::Rgb, 256, 192), 1, "a small size stays whole");
        assert_eq!(strips(Layout::Gray, 4096, 3072), MAX_STRIPS);
        assert_eq!(
            strips(Layout::Rgb, 16_000, 40),
            1,
            "a thin strip of a picture stays whole"
        );
        assert_eq!(strips(Layout::Rgba, 4096, 3072), 1, "alpha is never cut");
        assert_eq!(strips(Layout::Rgb, 1, 1), 1);
    }
}
