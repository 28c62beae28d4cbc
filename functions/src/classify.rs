//! The `classify` function: images in, the model's top labels out. Preprocessing follows the
//! model's `config.yaml` (resize the shorter side, centre crop, mean/std, layout, channel order);
//! every image of a batch goes through the model in one run.

use std::sync::Arc;
use std::time::Instant;

use fast_image_resize::{FilterType, Resizer};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;
use weir_models::config::{Filter, Layout as TensorLayout, Preprocess};
use weir_models::stats::RequestTimes;
use weir_models::{LoadedModel, Repository, Tensor};

use crate::model_ref::{Hold, ModelRef};
use crate::thumbnail::{Allowance, Layout, Picture, decode, shrink, upright};
use crate::{ErrorKind, ExecCtx, FnError, Function, Input, Limits, Output};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyParams {
    /// A model in the repository, with `preprocess` and `labels` in its config.
    pub model: String,
    /// A version number; the highest ready one when left out.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Decoded pixels allowed per image (decompression bombs are refused before decoding).
    #[serde(default = "default_max_pixels")]
    pub max_pixels: u64,
}

fn default_top_k() -> usize {
    5
}
fn default_max_pixels() -> u64 {
    100_000_000
}

pub struct Classify {
    model: ModelRef,
    params: ClassifyParams,
}

impl Classify {
    /// Check the params against the repository: the model must exist (it may still be loading
    /// or broken; calls then fail with 503 until it is ready).
    pub fn new(
        repo: Arc<Repository>,
        params: ClassifyParams,
        hold: Hold<'_>,
    ) -> Result<Self, (&'static str, String)> {
        if params.top_k == 0 {
            return Err(("top_k", "at least 1".into()));
        }
        if !repo.index().iter().any(|e| e.name == params.model) {
            let names: Vec<String> = repo.index().into_iter().map(|e| e.name).collect();
            return Err((
                "model",
                format!(
                    "no model '{}' in the repository {} (it has: {})",
                    params.model,
                    repo.root().display(),
                    names.join(", ")
                ),
            ));
        }
        if let Ok(m) = repo.get(&params.model, params.version.as_deref()) {
            image_model(&m).map_err(|e| ("model", e.reason().to_string()))?;
        }
        let model = hold.model_ref(repo, &params.model, params.version.as_deref());
        Ok(Classify { model, params })
    }
}

/// The preprocessing and labels of a model fit for `classify`.
fn image_model(m: &LoadedModel) -> Result<(&Preprocess, &[String]), FnError> {
    let unfit =
        |why: String| FnError::new(ErrorKind::Unavailable, format!("model '{}': {why}", m.name));
    let p = m.config.preprocess.as_ref().ok_or_else(|| {
        unfit("config.yaml has no preprocess section, so images cannot be fed to it".into())
    })?;
    let labels = m
        .labels
        .as_deref()
        .ok_or_else(|| unfit("config.yaml names no labels file".into()))?;
    let c = i64::from(p.crop);
    let want = match p.layout {
        TensorLayout::Nchw => vec![3, c, c],
        TensorLayout::Nhwc => vec![c, c, 3],
    };
    match m.signature.inputs.as_slice() {
        [only] if only.dims == want && only.datatype == weir_models::DataType::Fp32 => {}
        _ => {
            return Err(unfit(format!(
                "classify needs one FP32 input of dims {want:?} (preprocess crop {c}), the model takes {:?}",
                m.signature.inputs
            )));
        }
    }
    Ok((p, labels))
}

impl Function for Classify {
    fn kind(&self) -> &'static str {
        "classify"
    }

    fn instances(&self) -> Option<crate::Instances> {
        Some(self.model.instances())
    }

    fn idle(&self, after: std::time::Duration) -> bool {
        self.model.idle(after)
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: 256,
            gpu_capable: false,
            streams_input: false,
            max_decode_bytes: crate::thumbnail::most_reserved(self.params.max_pixels),
        }
    }

    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        let started = Instant::now();
        let model = match self.model.get() {
            Ok(m) => m,
            Err(e) => return vec![Err(e); batch.len()],
        };
        let (pre, labels) = match image_model(&model) {
            Ok(x) => x,
            Err(e) => return vec![Err(e); batch.len()],
        };
        let rows: Vec<Result<Vec<f32>, FnError>> = batch
            .par_iter()
            .enumerate()
            .map(|(i, input)| {
                ctx.check(i)?;
                let mut allow = ctx.allowance(i, self.params.max_pixels);
                allow.rgb_copy = true;
                ctx.cores
                    .on_core(|| pixels_to_row(&input.bytes, pre, &allow))
            })
            .collect();
        let ok: Vec<usize> = (0..rows.len()).filter(|i| rows[*i].is_ok()).collect();
        let mut scores: Vec<Option<Result<Vec<f32>, FnError>>> = vec![None; batch.len()];
        let chunk = model.signature.max_batch_size.max(1);
        for group in ok.chunks(chunk) {
            // Through the model's batcher, where it can join HTTP requests for the same model.
            let result = run_rows(
                &model,
                pre,
                group.iter().map(|i| rows[*i].as_ref().unwrap()),
            );
            match result {
                Ok(per_row) => {
                    for (i, s) in group.iter().zip(per_row) {
                        scores[*i] = Some(Ok(s));
                    }
                }
                Err(e) => group.iter().for_each(|i| scores[*i] = Some(Err(e.clone()))),
            }
        }
        let k = self.params.top_k;
        rows.into_iter()
            .zip(scores)
            .map(|(row, score)| {
                let result = match (row, score) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(Ok(logits))) => Ok(labelled(&model, labels, &logits, k)),
                    (Ok(_), Some(Err(e))) => Err(e),
                    (Ok(_), None) => Err(FnError::transient("the row was not run")),
                };
                model.stats.request(
                    1,
                    RequestTimes {
                        ok: result.is_ok(),
                        total: started.elapsed(),
                    },
                );
                result
            })
            .collect()
    }
}

/// One image to one normalised input row.
fn pixels_to_row(bytes: &[u8], p: &Preprocess, allow: &Allowance) -> Result<Vec<f32>, FnError> {
    let pic = rgb(decode(bytes, allow, None)?);
    let (dw, dh) = pic.displayed();
    let short = f64::from(dw.min(dh));
    let scale = |side: u32| ((f64::from(side) * f64::from(p.resize) / short).round() as u32).max(1);
    let (tw, th) = if dw <= dh {
        (p.resize, scale(dh))
    } else {
        (scale(dw), p.resize)
    };
    let filter = match p.filter {
        Filter::Bilinear => FilterType::Bilinear,
        Filter::Bicubic => FilterType::CatmullRom,
        Filter::Lanczos3 => FilterType::Lanczos3,
    };
    let small = shrink(&mut Resizer::new(), &pic, (tw, th), filter)?;
    let frame = upright(&small);
    let c = p.crop as usize;
    let (left, top) = (
        (frame.width as usize - c) / 2,
        (frame.height as usize - c) / 2,
    );
    let stride = frame.width as usize * 3;
    let mut crop = Vec::with_capacity(c * c * 3);
    for y in top..top + c {
        crop.extend_from_slice(&frame.pixels[y * stride + left * 3..y * stride + (left + c) * 3]);
    }
    let mut row = Vec::with_capacity(c * c * 3);
    weir_models::preprocess::normalize(p, &crop, c, &mut row);
    Ok(row)
}

/// Grey replicated, alpha dropped (not composited), as Pillow's `convert("RGB")` does.
fn rgb(pic: Picture) -> Picture {
    use image::{DynamicImage, GrayImage, RgbaImage};
    let (w, h) = (pic.width, pic.height);
    // The image crate's conversions (built optimised even in debug builds) over a hand loop.
    let pixels = match pic.layout {
        Layout::Rgb => return pic,
        Layout::Gray => GrayImage::from_raw(w, h, pic.pixels).map(DynamicImage::ImageLuma8),
        Layout::Rgba => RgbaImage::from_raw(w, h, pic.pixels).map(DynamicImage::ImageRgba8),
    }
    .map(|img| img.into_rgb8().into_raw())
    .unwrap_or_default();
    Picture {
        layout: Layout::Rgb,
        pixels,
        ..pic
    }
}

/// Run prepared rows as one batch; the scores per row.
fn run_rows<'a>(
    model: &LoadedModel,
    p: &Preprocess,
    rows: impl ExactSizeIterator<Item = &'a Vec<f32>>,
) -> Result<Vec<Vec<f32>>, FnError> {
    let n = rows.len();
    let c = p.crop as usize;
    let mut values = Vec::with_capacity(n * 3 * c * c);
    rows.for_each(|r| values.extend_from_slice(r));
    let spec = &model.signature.inputs[0];
    let mut shape: Vec<usize> = spec.dims.iter().map(|d| *d as usize).collect();
    let batched = model.signature.max_batch_size > 0;
    if batched {
        shape.insert(0, n);
    }
    let run = |shape: Vec<usize>, values: &[f32]| {
        let input = Tensor::from_f32(spec.name.clone(), shape, values);
        let out = model
            .run_blocking(vec![input], "classify")
            .map_err(crate::infer::model_error)?;
        out.into_iter()
            .next()
            .and_then(|t| t.to_f32())
            .ok_or_else(|| FnError::transient("the model's first output is not FP32"))
    };
    if batched {
        let flat = run(shape, &values)?;
        let per = flat.len() / n.max(1);
        Ok(flat.chunks(per.max(1)).map(<[f32]>::to_vec).collect())
    } else {
        values
            .chunks(3 * c * c)
            .map(|v| run(shape.clone(), v))
            .collect()
    }
}

/// Softmax over the logits (in f64), then the top `k` with their labels.
fn labelled(model: &LoadedModel, labels: &[String], logits: &[f32], k: usize) -> Output {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let exp: Vec<f64> = logits.iter().map(|x| (*x as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|a, b| exp[*b].total_cmp(&exp[*a]).then(a.cmp(b)));
    let top: Vec<serde_json::Value> = order
        .iter()
        .take(k)
        .map(|i| {
            json!({
                "index": i,
                "label": labels.get(*i).map(String::as_str).unwrap_or(""),
                "score": exp[*i] / sum,
            })
        })
        .collect();
    let summary = json!({"model": model.name, "version": model.version.to_string(), "labels": top});
    let bytes = serde_json::to_vec_pretty(&summary).unwrap_or_default();
    Output::json_document("labels.json", bytes, summary)
}
