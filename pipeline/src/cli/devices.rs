//! `weir devices`: the devices Weir can place work on, or why there is no GPU.

use serde_json::json;
use weir_gpu::Inventory;

#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DevicesArgs) {
    let inv = Inventory::probe();
    let threads = weir_gpu::cpu_threads();
    if args.json {
        let gpus: Vec<_> = inv
            .gpus
            .iter()
            .map(|g| {
                json!({
                    "device": format!("cuda:{}", g.index), "name": g.name, "memory_bytes": g.memory_bytes,
                    "compute_capability": format!("{}.{}", g.compute_capability.0, g.compute_capability.1),
                })
            })
            .collect();
        let out = json!({
            "cpu": { "threads": threads },
            "cuda_driver": inv.driver_version,
            "gpus": gpus,
            "no_gpu_reason": inv.no_gpu_reason,
        });
        println!("{out:#}");
        return;
    }
    println!("cpu      {threads} threads");
    if let Some(v) = inv.driver_version {
        println!("cuda     driver {}.{}", v / 1000, (v % 1000) / 10);
    }
    for g in &inv.gpus {
        println!(
            "cuda:{}   {}, {:.1} GiB, compute capability {}.{}",
            g.index,
            g.name,
            g.memory_bytes as f64 / (1u64 << 30) as f64,
            g.compute_capability.0,
            g.compute_capability.1
        );
    }
    if let Some(reason) = &inv.no_gpu_reason {
        println!("gpu      none: {reason}; functions run on the CPU");
    }
}
