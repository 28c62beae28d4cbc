//! `weir check`: load a config as `weir serve` would (functions, params, models, bus and store
//! settings) without starting anything or connecting anywhere, and print what it would run. For
//! CI and for deploy checks: the drain it prints is what a pod's termination grace period must
//! cover.

use std::path::PathBuf;

use serde_json::json;

use crate::config::{BusSection, Config, StoreSection};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The config file (weir.yaml).
    #[arg(long, env = "WEIR_CONFIG")]
    config: PathBuf,
}

pub fn run(args: &CheckArgs) -> anyhow::Result<()> {
    let inventory = weir_gpu::Inventory::probe();
    let config = Config::load(&args.config, &inventory)?;
    let functions: Vec<_> = config
        .functions
        .iter()
        .map(|f| {
            let triggers: Vec<&str> = f.spec.triggers.iter().map(|t| t.key()).collect();
            json!({
                "name": f.spec.name,
                "kind": f.spec.kind,
                "device": f.device.to_string(),
                "timeout_s": f.spec.resources.timeout.as_secs_f64(),
                "triggers": triggers,
                "output_bucket": f.spec.output.as_ref().map(|o| o.bucket.clone()),
            })
        })
        .collect();
    let out = json!({
        "config": args.config.display().to_string(),
        "functions": functions,
        "store": match &config.file.store { StoreSection::Local => "local", StoreSection::S3(_) => "s3" },
        "bus": match &config.file.bus { BusSection::Embedded => "embedded", BusSection::Nats(_) => "nats" },
        "drain_s": config.drain().as_secs_f64(),
    });
    println!("{out:#}");
    Ok(())
}
