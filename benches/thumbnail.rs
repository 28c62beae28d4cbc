//! Thumbnail timing harness: the `thumbnail` function called in process on the fixture photos,
//! one thread and then all cores, for one width (256) and the example's two (256 + 1024, JPEG q80).
//!
//!   cargo run --release -p weir-benches --bin thumbnail-bench -- [--iters N] [--min-width PX] [--format jpeg|png|webp]
//!
//! Prints a table of milliseconds per image (median of N), images per second on all cores, and the
//! PSNR of the 256 px output against the full-resolution Pillow reference in fixtures/reference.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rayon::prelude::*;
use weir_functions::thumbnail::{Format, Thumbnail, ThumbnailParams};
use weir_functions::{ExecCtx, Input};

struct Args {
    iters: usize,
    format: Format,
    min_width: u32,
    dir: PathBuf,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        iters: 15,
        format: Format::Jpeg,
        min_width: 1280,
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--iters" => a.iters = value.parse()?,
            "--min-width" => a.min_width = value.parse()?,
            "--dir" => a.dir = value.into(),
            "--format" => {
                a.format = match value.as_str() {
                    "jpeg" => Format::Jpeg,
                    "png" => Format::Png,
                    "webp" => Format::Webp,
                    other => bail!("--format {other}: use jpeg, png or webp"),
                }
            }
            other => bail!("unknown flag {other}: use --iters, --min-width, --dir or --format"),
        }
    }
    Ok(a)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let all = rayon::ThreadPoolBuilder::new().num_threads(cores).build()?;
    let variants = [("256", vec![256]), ("256+1024", vec![256, 1024])];
    println!(
        "# thumbnail, {:?} q80, median of {} runs, {cores} cores",
        a.format, a.iters
    );
    println!(
        "{:<40} {:>9} {:>12} {:>14} {:>9} {:>9}",
        "photo", "widths", "1 thread ms", "all cores img/s", "PSNR dB", "KB out"
    );
    for photos::Photo { name, path, bytes } in photos::at_least(&a.dir, a.min_width)? {
        let input = Input::new(bytes);
        for (label, sizes) in &variants {
            let f = Thumbnail::new(ThumbnailParams::new(sizes.clone(), a.format, 80))
                .map_err(|(field, msg)| anyhow::anyhow!("{field}: {msg}"))?;
            let ctx = ExecCtx::unbounded(1);
            let first = f
                .run_one(&input, &ctx, 0)
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let db = psnr_against_reference(&path, &first.artifacts[0].bytes)?;
            let kb = first.artifacts.iter().map(|x| x.bytes.len()).sum::<usize>() as f64 / 1024.0;
            let single: Vec<Duration> = (0..a.iters)
                .map(|_| {
                    one.install(|| {
                        let t = Instant::now();
                        f.run_one(&input, &ctx, 0).map(|_| t.elapsed())
                    })
                })
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let n = a.iters * cores;
            let t = Instant::now();
            all.install(|| {
                (0..n)
                    .into_par_iter()
                    .try_for_each(|_| f.run_one(&input, &ctx, 0).map(drop))
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let per_sec = n as f64 / t.elapsed().as_secs_f64();
            let ms = median(single).as_secs_f64() * 1e3;
            println!("{name:<40} {label:>9} {ms:>12.1} {per_sec:>14.1} {db:>9.2} {kb:>9.1}");
        }
    }
    Ok(())
}

#[path = "photos.rs"]
mod photos;

/// PSNR (dB) of a 256 px thumbnail against `fixtures/reference/<stem>_256.png`.
fn psnr_against_reference(photo: &Path, thumbnail: &[u8]) -> anyhow::Result<f64> {
    let stem = photo.file_stem().unwrap_or_default().to_string_lossy();
    let reference = photo.with_file_name(format!("../reference/{stem}_256.png"));
    let a = ::image::load_from_memory(thumbnail)?.to_rgb8();
    let b = ::image::open(&reference)
        .with_context(|| reference.display().to_string())?
        .to_rgb8();
    weir_functions::thumbnail::psnr(&a, &b)
        .with_context(|| format!("{stem}: sizes differ from the reference"))
}
