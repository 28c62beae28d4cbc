//! One model's rows per second at each batch size, in process, one caller: whether batching pays
//! on this engine and machine (tract runs a plan on one thread; ort on its intra-op threads).
//!
//!   cargo run --release -p weir-benches --bin model-batch-bench -- [--model efficientnet_lite0]
//!       [--batches 1,2,4,8,16] [--seconds 3]

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use weir_models::Tensor;
use weir_pipeline::config::Config;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn main() -> anyhow::Result<()> {
    let model = arg("--model", "efficientnet_lite0");
    let seconds: f64 = arg("--seconds", "3").parse()?;
    let batches: Vec<usize> = arg("--batches", "1,2,4,8,16")
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let yaml = format!("models: {}\n", root.join("examples/models").display());
    let inventory = weir_gpu::Inventory::cpu_only("benchmark");
    let config = Config::parse(Path::new("bench.yaml"), &yaml, &inventory)?;
    let loaded = config
        .models
        .as_ref()
        .context("no repository")?
        .get(&model, None)?;
    let input = &loaded.signature.inputs[0];
    let row: usize = input.dims.iter().map(|&d| d.max(1) as usize).product();
    println!(
        "# {model} ({}), one caller, {seconds} s per batch size",
        loaded.backend
    );
    for b in batches {
        let shape: Vec<usize> = std::iter::once(b)
            .chain(input.dims.iter().map(|&d| d.max(1) as usize))
            .collect();
        let values: Vec<f32> = (0..b * row)
            .map(|i| (i % 256) as f32 / 128.0 - 1.0)
            .collect();
        let t = Tensor::from_f32(&input.name, shape, &values);
        let start = Instant::now();
        let mut rows = 0;
        while start.elapsed().as_secs_f64() < seconds {
            loaded.session.run(std::slice::from_ref(&t))?;
            rows += b;
        }
        let per_s = rows as f64 / start.elapsed().as_secs_f64();
        println!(
            "batch {b:>3}: {per_s:>8.1} rows/s  {:>7.2} ms per row",
            1e3 / per_s
        );
    }
    Ok(())
}
