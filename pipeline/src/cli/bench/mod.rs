//! `weir bench`: a model or a function swept over batch × concurrency × device against a running
//! server (or one started in process), measured as perf_analyzer measures (closed-loop clients,
//! a window after a warm-up), written as `results.json`, `results.md` and two SVG plots.
//! `weir bench compare A.json B.json` puts two runs side by side.

mod load;
mod machine;
mod plot;
mod report;
mod target;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use weir_gpu::{Device, DeviceRequest, Inventory};

use self::load::Load;
use self::report::{Latency, Record, Results, RunConfig, SCHEMA, Versions};
use self::target::{Server, Target};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    cmd: Option<BenchCmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Two result files side by side, B's throughput and latency as ratios to A's.
    Compare { a: PathBuf, b: PathBuf },
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A model of the server's repository: requests are Open Inference calls of random tensors.
    #[arg(
        long,
        required_unless_present = "function",
        conflicts_with = "function"
    )]
    model: Option<String>,
    /// A function: each request is one input file sent to its invoke endpoint.
    #[arg(long, required_unless_present = "model")]
    function: Option<String>,
    /// Input files or folders (their files) for --function, cycled through by the clients.
    #[arg(long, num_args = 1.., value_delimiter = ',')]
    input: Vec<PathBuf>,
    /// An input's sizes after the batch where the model leaves them open, as perf_analyzer's
    /// (`--shape INPUT0:16`); repeat for several inputs.
    #[arg(long = "shape", value_name = "NAME:D1,D2")]
    shapes: Vec<String>,
    /// Batch sizes (rows per request) for --model.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    batch: Vec<usize>,
    /// Requests in flight at once.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// Devices to measure on (cpu, cuda:N); default: where the server runs the target.
    #[arg(long, value_delimiter = ',')]
    device: Vec<String>,
    /// The measured window of each point.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before each window opens (batches filling, caches warming), not counted.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Folder for results.json, results.md and the plots (created if missing).
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// A running server's base URL; without it, --config starts one in this process.
    #[arg(long, env = "WEIR_URL")]
    server: Option<String>,
    /// Bearer token, when the server has one.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The config of the in-process server (used when no --server is given).
    #[arg(long, env = "WEIR_CONFIG")]
    config: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.cmd {
        Some(BenchCmd::Compare { a, b }) => {
            let (ra, rb) = (read_results(&a)?, read_results(&b)?);
            let table = report::compare(&ra, &rb).with_context(|| {
                format!("{} and {} cannot be compared", a.display(), b.display())
            })?;
            print!("{table}");
            Ok(())
        }
        None => measure(args.run).await,
    }
}

fn read_results(path: &Path) -> anyhow::Result<Results> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a weir bench results.json", path.display()))
}

/// The settings checked before anything is started, so a wrong flag costs no server start.
fn check(args: &RunArgs) -> anyhow::Result<()> {
    if args.batch.contains(&0) || args.concurrency.contains(&0) {
        bail!("--batch and --concurrency take sizes of at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    if args.function.is_some() && args.batch != [1] {
        bail!("--batch does not apply to --function: each request carries one input");
    }
    if args.function.is_some() && !args.shapes.is_empty() {
        bail!("--shape is for --model: a function is sent its input files");
    }
    if args.model.is_some() && !args.input.is_empty() {
        bail!("--input is for --function; a model is sent random tensors of its input shapes");
    }
    if args.function.is_some() && args.input.is_empty() {
        bail!("--function needs --input FILES or a folder of them");
    }
    if args.server.is_none() && args.config.is_none() {
        bail!(
            "give --server URL (or WEIR_URL) for a running server, or --config F to start one here"
        );
    }
    Ok(())
}

/// The files named, folders replaced by the files in them (sorted, hidden ones left out).
fn input_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read the folder {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .filter(|f| {
                    !f.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            if found.is_empty() {
                bail!("no input files in {}", p.display());
            }
            found.sort();
            out.extend(found);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("input {} does not exist", p.display());
        }
    }
    Ok(out)
}

/// The devices to measure on. A server places a model or function by its own config, so each
/// must be where the server runs the target, and, for a server in this process, on this machine.
fn devices(
    asked: &[String],
    local: Option<&Inventory>,
    target: &Target,
) -> anyhow::Result<Vec<Device>> {
    let runs_on = match target.device() {
        "cpu" => Device::Cpu,
        d => match d.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => bail!(
                "the server names an unknown device {d:?} for {}",
                target.name()
            ),
        },
    };
    if asked.is_empty() {
        return Ok(vec![runs_on]);
    }
    let mut out = Vec::new();
    for d in asked {
        let request = d.parse::<DeviceRequest>()?;
        let device = match (local, request) {
            (_, DeviceRequest::Auto) => runs_on,
            (Some(inv), r) => r.resolve(inv, true)?,
            (None, DeviceRequest::Cpu) => Device::Cpu,
            (None, DeviceRequest::Cuda(n)) => Device::Cuda(n.unwrap_or(0)),
        };
        if device != runs_on {
            bail!(
                "{} {:?} runs on {runs_on} on this server, not {device}: place it there in its config \
                 (a model's instance_group.device, a function's device) and run weir bench again",
                target.kind(),
                target.name()
            );
        }
        if !out.contains(&device) {
            out.push(device);
        }
    }
    Ok(out)
}

/// A server started in this process from `--config`, kept until the run ends.
type InProcess = (crate::server::Running, tempfile::TempDir);

/// The server's base URL: `--server`'s, or that of one started here from `--config`.
async fn connect(args: &RunArgs, inv: &Inventory) -> anyhow::Result<(String, Option<InProcess>)> {
    if let Some(url) = &args.server {
        return Ok((url.trim_end_matches('/').to_string(), None));
    }
    let path = args.config.as_ref().expect("checked");
    let config = crate::config::Config::load(path, inv)?;
    let data = tempfile::tempdir().context("cannot make a data folder")?;
    let settings = crate::server::Settings::loopback(data.path().to_path_buf());
    let running = crate::server::start(&settings, &config)
        .await
        .context("cannot start the in-process server")?;
    Ok((
        format!("http://{}", running.http_addr()),
        Some((running, data)),
    ))
}

async fn measure(args: RunArgs) -> anyhow::Result<()> {
    check(&args)?;
    let files = input_files(&args.input)?;
    let inv = Inventory::probe();
    let (base, in_process) = connect(&args, &inv).await?;
    let concurrency_max = args.concurrency.iter().copied().max().unwrap_or(1);
    let server = Server {
        base: base.clone(),
        local: in_process.is_some(),
        token: args.token.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency_max)
            .timeout(Duration::from_secs(300))
            .build()?,
    };
    let target = match (&args.model, &args.function) {
        (Some(m), _) => {
            let shapes = args
                .shapes
                .iter()
                .map(|s| target::parse_shape(s))
                .collect::<anyhow::Result<_>>()?;
            Target::model(&server, m, shapes).await?
        }
        (_, Some(f)) => Target::function(&server, f, files).await?,
        _ => unreachable!("clap requires one"),
    };
    let local = in_process.as_ref().map(|_| &inv);
    let devices = devices(&args.device, local, &target)?;
    let versions = Versions {
        weir: env!("CARGO_PKG_VERSION").to_string(),
        server: match server.get("/v2").await {
            Ok((200, v)) => format!(
                "{} {}",
                v["name"].as_str().unwrap_or("?"),
                v["version"].as_str().unwrap_or("?")
            ),
            _ => "unknown".into(),
        },
    };
    let mut grid = Vec::new();
    for &d in &devices {
        for &b in &args.batch {
            grid.extend(args.concurrency.iter().map(|&c| (d, b, c)));
        }
    }
    let bar = indicatif::ProgressBar::new(grid.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
            .expect("a fixed template"),
    );
    let mut records = Vec::new();
    for (i, &(device, batch, concurrency)) in grid.iter().enumerate() {
        let label = format!("{device} batch {batch} concurrency {concurrency}");
        bar.set_message(label.clone());
        let rec = point(&server, &target, &args, device, batch, concurrency)
            .await
            .with_context(|| format!("at {label}"))?;
        bar.suspend(|| eprintln!("point {}/{}: {label}: {}", i + 1, grid.len(), summary(&rec)));
        records.push(rec);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let results = Results {
        schema: SCHEMA.into(),
        target: report::Target {
            kind: target.kind().into(),
            name: target.name().into(),
        },
        machine: machine::describe(&inv),
        versions,
        config: RunConfig {
            server: if in_process.is_some() {
                "in-process".into()
            } else {
                base
            },
            batch: args.batch.clone(),
            concurrency: args.concurrency.clone(),
            devices: devices.iter().map(Device::to_string).collect(),
            warmup_s: args.warmup.as_secs_f64(),
            duration_s: args.duration.as_secs_f64(),
            inputs: match &target {
                Target::Function { files, .. } => files.len(),
                Target::Model { .. } => target::MODEL_BODIES,
            },
        },
        records,
    };
    write(&results, &args.out)?;
    if let Some((running, _data)) = in_process {
        running
            .shutdown()
            .await
            .context("the in-process server did not stop cleanly")?;
    }
    Ok(())
}

/// Fewer answers than this inside a window make a coarse figure: one request more or less moves
/// the throughput by several percent.
const FEW_REQUESTS: u64 = 50;

/// A point's line on stderr, with what a reader should know about it.
fn summary(rec: &Record) -> String {
    let mut s = format!(
        "{:.1} inputs/s, p50 {:.2} ms, p99 {:.2} ms",
        rec.throughput, rec.latency_ms.p50, rec.latency_ms.p99
    );
    if rec.errors > 0 {
        s += &format!(", {} errors", rec.errors);
    }
    if rec.requests < FEW_REQUESTS {
        s += &format!(
            " (only {} answers in the window: a longer --duration gives a steadier figure)",
            rec.requests
        );
    }
    s
}

/// One point: the clients' load, the server's times and the machine's use over the window.
async fn point(
    server: &Server,
    target: &Target,
    args: &RunArgs,
    device: Device,
    batch: usize,
    concurrency: usize,
) -> anyhow::Result<Record> {
    let load = Load {
        url: target.url(&server.base),
        token: server.token.clone(),
        bodies: Arc::new(target.bodies(batch)?),
        concurrency,
        warmup: args.warmup,
        window: args.duration,
    };
    let w = load.window(Instant::now());
    let clients = load.spawn(&server.client, &w);
    tokio::time::sleep_until(w.opens.into()).await;
    let (times0, cpu0) = (target.times(server).await?, machine::CpuTimes::now());
    tokio::time::sleep_until(w.closes.into()).await;
    let (times1, cpu1) = (target.times(server).await?, machine::CpuTimes::now());
    // The driver binds a context to the reading thread: read off the async runtime's threads.
    let gpu = match server.local {
        true => tokio::task::spawn_blocking(move || machine::gpu_use(device))
            .await
            .ok()
            .flatten(),
        false => None,
    };
    let mut m = load::join(clients).await;
    if m.requests == 0 {
        let why = m
            .first_error
            .unwrap_or_else(|| "no answer inside the window".into());
        bail!("no request succeeded: {why}");
    }
    m.latencies_ms.sort_by(f64::total_cmp);
    let l = &m.latencies_ms;
    Ok(Record {
        device: device.to_string(),
        batch,
        concurrency,
        requests: m.requests,
        errors: m.errors,
        throughput: (m.requests as usize * batch) as f64 / args.duration.as_secs_f64(),
        latency_ms: Latency {
            p50: load::percentile(l, 50.0),
            p95: load::percentile(l, 95.0),
            p99: load::percentile(l, 99.0),
            mean: l.iter().sum::<f64>() / l.len() as f64,
        },
        server: times0.per_request(&times1),
        cpu_percent: match (cpu0, cpu1) {
            (Some(a), Some(b)) => a.percent_until(&b),
            _ => None,
        },
        gpu,
    })
}

fn write(r: &Results, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let json = out.join("results.json");
    std::fs::write(&json, serde_json::to_string_pretty(r)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let table = report::markdown(r);
    let md = out.join("results.md");
    std::fs::write(&md, &table).with_context(|| format!("cannot write {}", md.display()))?;
    let plots = plot::write(r, out)?;
    print!("{table}");
    println!("\nwrote {}, {}", json.display(), md.display());
    for p in plots {
        println!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_on(device: &str) -> Target {
        Target::Model {
            name: "m".into(),
            inputs: vec![],
            max_batch: 8,
            device: device.into(),
            shapes: Default::default(),
        }
    }

    fn asked(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn devices_must_be_where_the_server_runs_the_target() {
        let cpu = model_on("cpu");
        assert_eq!(devices(&[], None, &cpu).unwrap(), vec![Device::Cpu]);
        assert_eq!(
            devices(&asked(&["cpu", "auto"]), None, &cpu).unwrap(),
            vec![Device::Cpu]
        );
        let e = devices(&asked(&["cuda:1"]), None, &cpu).unwrap_err();
        assert!(
            e.to_string()
                .contains("runs on cpu on this server, not cuda:1"),
            "{e}"
        );
        assert!(devices(&asked(&["tpu"]), None, &cpu).is_err());
        // A remote server's GPU is its own: not looked for on this machine.
        let gpu = model_on("cuda:0");
        assert_eq!(
            devices(&asked(&["cuda"]), None, &gpu).unwrap(),
            vec![Device::Cuda(0)]
        );
        // A server in this process uses this machine's GPUs.
        let here = Inventory::cpu_only("no driver here");
        assert_eq!(
            devices(&asked(&["auto"]), Some(&here), &cpu).unwrap(),
            vec![Device::Cpu]
        );
        let e = devices(&asked(&["cuda:0"]), Some(&here), &gpu).unwrap_err();
        assert!(e.to_string().contains("no driver here"), "{e}");
    }
}
