//! The `weir` command line. anyhow lives here, at the binary's edge, and nowhere else.

mod api;
mod bench;
mod check;
mod dead_letters;
mod devices;
mod invoke;
mod reprocess;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, FileConfig, StoreSection};
use crate::server::{self, DEFAULT_HTTP, DEFAULT_S3, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Serverless media and ML inference in one binary"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run the server: functions, worker pools and the HTTP API.
    Serve(ServeArgs),
    /// Invoke a function once through a running server and write its artifacts to a folder.
    Invoke(invoke::InvokeArgs),
    /// Run a function over a bucket's objects through a running server (a job), and follow it.
    Reprocess(reprocess::ReprocessArgs),
    /// What a running server gave up on: list, show, retry or purge its dead letters.
    DeadLetters(dead_letters::DeadLettersArgs),
    /// Show the devices Weir can place work on, or why there is no GPU.
    Devices(devices::DevicesArgs),
    /// Load a config as `serve` would, start nothing, and print what it would run (JSON).
    Check(check::CheckArgs),
    /// Sweep a model or function over batch x concurrency x device: results.json, a table, plots.
    Bench(Box<bench::BenchArgs>),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The config file (weir.yaml).
    #[arg(long, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
    /// Where buckets, the bus and dead letters live [config: data_dir; default ./weir-data].
    #[arg(long, env = "WEIR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API [config: http.listen; default 127.0.0.1:8080].
    #[arg(long, env = "WEIR_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Address of the built-in S3 endpoint [config: s3.listen; default 127.0.0.1:9000].
    #[arg(long, env = "WEIR_S3_LISTEN")]
    s3_listen: Option<SocketAddr>,
    /// Serve on a non-loopback address without a token.
    #[arg(long)]
    insecure: bool,
}

pub fn main() -> ExitCode {
    crate::telemetry::init_logging();
    let cli = Cli::parse();
    let result = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => Err(anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Serve(args) => serve(args).await,
        Cmd::Invoke(args) => invoke::run(args).await,
        Cmd::Reprocess(args) => reprocess::run(args).await,
        Cmd::DeadLetters(args) => dead_letters::run(args).await,
        Cmd::Check(args) => check::run(&args),
        Cmd::Bench(args) => bench::run(*args).await,
        Cmd::Devices(args) => {
            devices::run(&args);
            Ok(())
        }
    }
}

/// The S3 endpoint's keys when none are set: fine on loopback, printed at start so nobody
/// mistakes them for a secret.
pub const DEFAULT_S3_KEYS: (&str, &str) = ("weir", "weir-secret-key");

/// Flag or environment (clap), then the config file, then the built-in default.
pub fn resolve(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<Settings> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Ok(Settings {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| "weir-data".into()),
        http_listen: match args.http_listen.or(file.http.listen) {
            Some(a) => a,
            None => DEFAULT_HTTP.parse()?,
        },
        s3_listen: match args.s3_listen.or(file.s3.listen) {
            Some(a) => a,
            None => DEFAULT_S3.parse()?,
        },
        token: env("WEIR_TOKEN").or_else(|| file.http.token.clone()),
        inference_token: env("WEIR_INFERENCE_TOKEN").or_else(|| file.http.inference_token.clone()),
        insecure: args.insecure,
        s3_keys: (
            env("WEIR_S3_ACCESS_KEY")
                .or_else(|| file.s3.access_key.clone())
                .unwrap_or_else(|| DEFAULT_S3_KEYS.0.into()),
            env("WEIR_S3_SECRET_KEY")
                .or_else(|| file.s3.secret_key.clone())
                .unwrap_or_else(|| DEFAULT_S3_KEYS.1.into()),
        ),
        http_limits: crate::http::Limits {
            max_connections: file.http.max_connections,
            header_timeout: file.http.header_timeout,
        },
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let inventory = weir_gpu::Inventory::probe();
    let config = match &args.config {
        Some(path) => Config::load(path, &inventory)?,
        None => {
            tracing::warn!("no --config given: serving with no functions");
            Config {
                file: FileConfig::default(),
                functions: vec![],
                models: None,
            }
        }
    };
    let settings = resolve(&args, &config.file)?;
    match &inventory.no_gpu_reason {
        Some(reason) => tracing::info!("devices: CPU only ({reason})"),
        None => tracing::info!("devices: {} CUDA GPU(s)", inventory.gpus.len()),
    }
    let running = server::start(&settings, &config)
        .await
        .context("cannot start the server")?;
    let base = format!("http://{}", running.http_addr());
    // The banner must not take the server down if nobody reads stdout (a closed pipe).
    macro_rules! println {
        ($($arg:tt)*) => {{
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout(), $($arg)*);
        }};
    }
    println!(
        "Weir is serving on {base} (data in {})",
        settings.data_dir.display()
    );
    for f in &config.functions {
        println!(
            "  {:<12} {:<10} POST {base}/v1/functions/{}/invoke   (weir invoke {} FILE)",
            f.spec.name,
            f.spec.kind.as_str(),
            f.spec.name,
            f.spec.name
        );
        for t in &f.spec.triggers {
            if let crate::config::Trigger::Http(h) = t {
                println!("  {:<12} {:<10} POST {base}{}", "", "", h.path);
            }
        }
    }
    println!("  health {base}/healthz   metrics {base}/metrics   functions {base}/v1/functions");
    match (running.s3_addr(), &config.file.store) {
        (Some(s3), _) => {
            let (ak, sk) = &settings.s3_keys;
            let note = if (ak.as_str(), sk.as_str()) == DEFAULT_S3_KEYS {
                format!(
                    " with the default keys {ak} / {sk} (set WEIR_S3_ACCESS_KEY and WEIR_S3_SECRET_KEY)"
                )
            } else {
                String::new()
            };
            println!("  S3 endpoint http://{s3} (path-style){note}");
        }
        (None, StoreSection::S3(s)) => {
            let at = s.endpoint.as_deref().unwrap_or("AWS");
            println!("  objects in S3 at {at} (the built-in S3 endpoint is off)");
        }
        (None, StoreSection::Local) => {}
    }
    running
        .until_signal()
        .await
        .context("the HTTP server failed")?;
    Ok(())
}
