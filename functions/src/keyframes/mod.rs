//! The `keyframes` function: a video in, pictures of its key frames (or one per interval, or one
//! per scene) and a `manifest.json` out. Decoding runs on the calling thread while the pictures
//! are encoded on an idle core when there is one (`encodes.rs`); at most a few wait, so memory
//! stays bounded.

mod convert;
mod encodes;
mod hwdecode;
mod open;
mod params;
mod pick;
mod walk;

use std::collections::BTreeMap;

use serde_json::json;

pub use open::Info;
pub use params::{KeyframesParams, Mode};

use crate::thumbnail::{Chroma, Frame, encode, target_size};
use crate::{Artifact, Early, ExecCtx, FnError, Function, Input, Limits, Output, Placement};

/// Pixels of one video waiting for another core to encode them, at most: twelve 1080p pictures,
/// or one 8K picture encoded in line.
const MAX_WAITING_BYTES: usize = 75 << 20;

pub struct Keyframes {
    params: KeyframesParams,
}

/// One picture made, before it is placed in the output.
struct Made {
    index: usize,
    pts: f64,
    key: bool,
    width: u32,
    height: u32,
    /// `None` once handed on early (`Early::offer`).
    bytes: Option<Vec<u8>>,
}

impl Keyframes {
    pub fn new(params: KeyframesParams) -> Result<Self, (&'static str, String)> {
        params.validate()?;
        Ok(Keyframes { params })
    }

    pub fn params(&self) -> &KeyframesParams {
        &self.params
    }

    /// One video to its pictures and manifest.
    pub fn run_one(&self, input: &Input, ctx: &ExecCtx, i: usize) -> Result<Output, FnError> {
        let p = &self.params;
        let bounds = open::Bounds {
            max_pixels: p.max_pixels,
            max_duration: p.max_duration,
            deadline: ctx.deadline(i),
        };
        let mut video = open::open(input, &bounds, p.mode == Mode::Keyframes, ctx.device)?;
        let info = video.info.clone();
        let size = target_size(info.displayed(), p.max_width.unwrap_or(u32::MAX), false);
        // Each picture is handed on once encoded, so where outputs are written the first ones are
        // in the store while the rest of the video is decoded, and the manifest comes last.
        let encode = |job: &Job| -> Result<Option<Vec<u8>>, FnError> {
            let bytes = encode(&job.frame, p.format, p.quality, Chroma::Sub420)?;
            let picture = self.picture(job.index, job.pts, bytes);
            Ok(Early::offer(input.early.as_ref(), picture).map(|a| a.bytes))
        };
        let encodes = encodes::Encodes::new(ctx.cores, &encode);
        let mut converter = convert::Converter::default();
        let mut grid_converter = convert::Converter::default();
        let ended = rayon::in_place_scope(|scope| {
            let mut index = 0;
            let mut take = |picked: walk::Picked| -> Result<(), FnError> {
                let frame = converter.upright_rgb(&picked.frame, size, info.rotation)?;
                drop(picked.frame);
                let job = Job {
                    index,
                    pts: picked.pts,
                    key: picked.key,
                    frame,
                };
                index += 1;
                encodes.submit(job, scope);
                Ok(())
            };
            let mut grid = |f: &ffmpeg_next::frame::Video| grid_converter.grey_grid(f, pick::GRID);
            let ended = walk::walk(
                &mut video,
                walk::Walk {
                    mode: p.mode,
                    max_frames: p.max_frames,
                    max_duration: p.max_duration.as_secs_f64(),
                    ctx,
                    index: i,
                    grid: &mut grid,
                    take: &mut take,
                },
            );
            if ended.is_ok() {
                encodes.drain();
            }
            ended
        })?;
        let made = encodes.finish()?;
        Ok(self.output(&info, made, &ended))
    }

    /// One picture's artifact: `<index>.<ext>`, with `index` and `pts_ms` for the key template.
    fn picture(&self, index: usize, pts: f64, bytes: Vec<u8>) -> Artifact {
        let p = &self.params;
        Artifact {
            name: format!("{index}.{}", p.format.extension()),
            content_type: p.format.content_type().to_string(),
            bytes,
            vars: BTreeMap::from([
                ("index".to_string(), index.to_string()),
                (
                    "pts_ms".to_string(),
                    ((pts * 1000.0).round() as i64).to_string(),
                ),
            ]),
            placement: Placement::Template,
        }
    }

    fn output(&self, info: &Info, made: Vec<Made>, ended: &walk::Ended) -> Output {
        let p = &self.params;
        let ext = p.format.extension();
        let (width, height) = info.displayed();
        let frames: Vec<_> = made
            .iter()
            .map(|m| {
                json!({
                    "index": m.index, "pts": round_ms(m.pts), "width": m.width,
                    "height": m.height, "key": m.key, "name": format!("{}.{ext}", m.index),
                })
            })
            .collect();
        let mut manifest = json!({
            "mode": p.mode.name(),
            "duration": info.duration.map(round_ms),
            "codec": info.codec,
            "width": width,
            "height": height,
            "rotation": info.rotation,
            "fps": info.fps.map(|f| (f * 1000.0).round() / 1000.0),
            "frames": frames,
            "truncated": ended.truncated,
        });
        if ended.capped {
            manifest["capped"] = json!(true);
        }
        if ended.damaged > 0 {
            manifest["damaged_packets"] = json!(ended.damaged);
        }
        // The manifest first: `?return=first` over HTTP answers with it.
        let manifest_artifact = Artifact {
            name: "manifest.json".into(),
            content_type: "application/json".into(),
            bytes: serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
            vars: BTreeMap::new(),
            placement: Placement::Beside,
        };
        let artifacts = std::iter::once(manifest_artifact)
            .chain(
                made.into_iter()
                    .filter_map(|m| Some(self.picture(m.index, m.pts, m.bytes?))),
            )
            .collect();
        Output::new(artifacts, manifest)
    }
}

struct Job {
    index: usize,
    pts: f64,
    key: bool,
    frame: Frame<'static>,
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

impl Function for Keyframes {
    fn kind(&self) -> &'static str {
        "keyframes"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: 16,
            // NVDEC through FFmpeg where the codec and the driver allow; the CPU otherwise.
            gpu_capable: true,
            streams_input: true,
            max_decode_bytes: 0,
        }
    }

    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        ctx.par_each(batch, |input, i| self.run_one(input, ctx, i))
    }
}
