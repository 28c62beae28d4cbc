//! Key frames, Weir against the ffmpeg CLI, side by side in one run: each round extracts every
//! video's key frames as full-size JPEGs with both, alternating which goes first.
//!
//!   cargo run --release -p weir-benches --bin keyframes-bench -- [--rounds N] [--dir DIR] [--quality Q]
//!
//! Weir: the `keyframes` function in process (mode keyframes, no max width), pictures written to a
//! folder. The CLI: `ffmpeg -skip_frame nokey -i IN -vsync vfr -q:v 2 OUT/%d.jpg`, one process per
//! video, as a script would run it. Prints key frames per second for each and their ratio, for
//! every video and in total. The VP9 and AV1 (libdav1d) decoders ignore `-skip_frame nokey`, so
//! there the CLI decodes and writes every frame; the totals are also given without those.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use weir_functions::keyframes::{Keyframes, KeyframesParams, Mode};
use weir_functions::{ExecCtx, Input};

struct Args {
    rounds: usize,
    dir: PathBuf,
    quality: u8,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        rounds: 10,
        dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/videos"),
        quality: 90,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => a.rounds = value.parse()?,
            "--dir" => a.dir = value.into(),
            "--quality" => a.quality = value.parse()?,
            other => bail!("unknown flag {other}: use --rounds, --dir or --quality"),
        }
    }
    Ok(a)
}

/// One video's totals over the rounds.
#[derive(Default)]
struct Tally {
    keyframes: usize,
    weir: Duration,
    cli: Duration,
    cli_pictures: usize,
}

fn weir_once(f: &Keyframes, video: &Path, out: &Path) -> anyhow::Result<usize> {
    let input = Input::new(std::fs::read(video)?);
    let output = f
        .run_one(&input, &ExecCtx::unbounded(1), 0)
        .map_err(|e| anyhow::anyhow!("{}: {e}", video.display()))?;
    let mut pictures = 0;
    for a in &output.artifacts {
        std::fs::write(out.join(&a.name), &a.bytes)?;
        pictures += usize::from(a.name.ends_with(".jpg"));
    }
    Ok(pictures)
}

fn cli_once(video: &Path, out: &Path) -> anyhow::Result<usize> {
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-y",
            "-skip_frame",
            "nokey",
            "-i",
        ])
        .arg(video)
        .args(["-vsync", "vfr", "-q:v", "2"])
        .arg(out.join("%d.jpg"))
        .status()
        .context("running ffmpeg (apt install ffmpeg)")?;
    ensure!(status.success(), "ffmpeg failed on {}", video.display());
    Ok(std::fs::read_dir(out)?.count())
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Duration)> {
    let t = Instant::now();
    let v = f()?;
    Ok((v, t.elapsed()))
}

fn fresh(dir: &Path) -> anyhow::Result<PathBuf> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let mut videos: Vec<PathBuf> = std::fs::read_dir(&a.dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            ["mp4", "mov", "mkv", "webm"].contains(&ext)
        })
        .collect();
    videos.sort();
    ensure!(!videos.is_empty(), "no videos in {}", a.dir.display());
    let mut params = KeyframesParams::new(Mode::Keyframes);
    params.quality = a.quality;
    params.max_frames = 100_000;
    let f = Keyframes::new(params).map_err(|(k, m)| anyhow::anyhow!("{k}: {m}"))?;
    let scratch = std::env::temp_dir().join(format!("weir-keyframes-bench-{}", std::process::id()));
    let mut tallies: Vec<Tally> = videos.iter().map(|_| Tally::default()).collect();
    // One warm-up round, not counted: page cache, FFmpeg's first use.
    for v in &videos {
        weir_once(&f, v, &fresh(&scratch)?)?;
        cli_once(v, &fresh(&scratch)?)?;
    }
    for round in 0..a.rounds {
        for (v, t) in videos.iter().zip(&mut tallies) {
            let weir_first = round % 2 == 0;
            for turn in 0..2 {
                let out = fresh(&scratch)?;
                if (turn == 0) == weir_first {
                    let (n, d) = timed(|| weir_once(&f, v, &out))?;
                    t.keyframes = n;
                    t.weir += d;
                } else {
                    let (n, d) = timed(|| cli_once(v, &out))?;
                    t.cli_pictures = n;
                    t.cli += d;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let rate = |n: usize, d: Duration| (n * a.rounds) as f64 / d.as_secs_f64();
    println!(
        "{} rounds, JPEG quality {} (Weir) and -q:v 2 (ffmpeg), {} cores",
        a.rounds,
        a.quality,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<34} {:>9} {:>13} {:>13} {:>7}",
        "video", "keyframes", "Weir kf/s", "ffmpeg kf/s", "ratio"
    );
    let mut totals = [(0usize, Duration::ZERO, Duration::ZERO); 2];
    for (v, t) in videos.iter().zip(&tallies) {
        let name = v.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let (w, c) = (rate(t.keyframes, t.weir), rate(t.keyframes, t.cli));
        let note = if t.cli_pictures != t.keyframes {
            format!("  (ffmpeg wrote {} pictures)", t.cli_pictures)
        } else {
            String::new()
        };
        println!(
            "{name:<34} {:>9} {w:>13.1} {c:>13.1} {:>6.2}x{note}",
            t.keyframes,
            w / c
        );
        let skipped = t.cli_pictures == t.keyframes;
        for (k, total) in totals.iter_mut().enumerate() {
            if k == 0 || skipped {
                total.0 += t.keyframes;
                total.1 += t.weir;
                total.2 += t.cli;
            }
        }
    }
    for (label, (n, w, c)) in ["all videos", "where ffmpeg skips non-key"]
        .iter()
        .zip(totals)
    {
        let (w, c) = (rate(n, w), rate(n, c));
        println!("{label:<34} {n:>9} {w:>13.1} {c:>13.1} {:>6.2}x", w / c);
    }
    Ok(())
}
