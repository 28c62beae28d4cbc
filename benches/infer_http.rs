//! Inference through Weir's Open Inference endpoint (binary tensors, as Triton's clients send
//! them) at concurrency 1, 8 and 32, beside the same model run in process; and what one request
//! costs the server, from an identity model beside a health probe, in one run.
//!
//!   cargo run --release -p weir-benches --bin infer-http-bench -- [--seconds S]
//!       [--python .venv/bin/python [--pairs N]] [--threads N]
//!
//! With `--python`, onnxruntime called directly from Python (`benches/ort_direct.py`, batch 8,
//! the same intra-op threads) alternates with HTTP at concurrency 8 (`--concurrency C`), N pairs, each HTTP figure
//! divided by the mean of the Python runs on either side: the machine's speed drifts.
//! `--threads N` gives onnxruntime N intra-op threads on both sides (default: every core);
//! `--preferred 8,16` replaces the classifier's preferred batch sizes (the example's are 8 and 16).
//!
//! The server runs in this process on 127.0.0.1 with `examples/models`; clients share the cores.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use weir_models::Tensor;
use weir_pipeline::config::Config;
use weir_pipeline::server::{self, Settings};

/// A binary-tensor request body for one FP32 input, and its JSON header's length.
fn request(input: &str, shape: &[usize], values: &[f32]) -> (bytes::Bytes, usize) {
    let head = serde_json::json!({
        "inputs": [{"name": input, "shape": shape, "datatype": "FP32",
                    "parameters": {"binary_data_size": values.len() * 4}}],
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    (body.into(), head.len())
}

struct Run {
    per_sec: f64,
    p50_ms: f64,
}

/// `concurrency` clients sending `body` to `url` for `seconds`, on the clients' own runtime (so
/// they do not borrow the server's worker threads, as a remote client would not).
async fn load(
    clients: &tokio::runtime::Handle,
    client: &reqwest::Client,
    url: &str,
    body: Option<(bytes::Bytes, usize)>,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<Run> {
    // Counted as perf_analyzer counts: requests completed inside a window that opens after a
    // warm-up (the first batches still filling) and closes before the clients drain, divided by
    // the window. Counting the fill and the drain made a run with 75 ms latencies read ~3% low.
    let window = Duration::from_secs_f64(seconds);
    let opens = Instant::now() + WARM_UP;
    let closes = opens + window;
    let body = Arc::new(body);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body) = (client.clone(), url.to_string(), body.clone());
        tasks.push(clients.spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < closes {
                let t = Instant::now();
                let res = match body.as_ref() {
                    Some((b, n)) => {
                        client
                            .post(&url)
                            .header("Inference-Header-Content-Length", *n)
                            .body(b.clone())
                            .send()
                            .await?
                    }
                    None => client.get(&url).send().await?,
                };
                let status = res.status();
                let bytes = res.bytes().await?;
                ensure!(
                    status.is_success(),
                    "{status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                let done = Instant::now();
                if done >= opens && done < closes {
                    times.push(done - t);
                }
            }
            anyhow::Ok(times)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort();
    Ok(Run {
        per_sec: all.len() as f64 / window.as_secs_f64(),
        p50_ms: all
            .get(all.len() / 2)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3),
    })
}

/// Requests before the counting window opens.
const WARM_UP: Duration = Duration::from_millis(500);

fn main() -> anyhow::Result<()> {
    let mut seconds = 5.0;
    // `--batched-only`: the in-process rate and HTTP at concurrency 8, for interleaved pairs
    // with `benches/ort_direct.py` on a machine whose speed drifts.
    let mut batched_only = false;
    let (mut python, mut pairs, mut threads) = (None, 5, weir_gpu::cpu_threads());
    let mut preferred: Option<String> = None;
    let mut batched_at = 8;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => seconds = it.next().context("--seconds needs a value")?.parse()?,
            "--batched-only" => batched_only = true,
            "--python" => python = Some(it.next().context("--python needs a path")?),
            "--pairs" => pairs = it.next().context("--pairs needs a count")?.parse()?,
            "--threads" => threads = it.next().context("--threads needs a count")?.parse()?,
            "--preferred" => preferred = Some(it.next().context("--preferred needs sizes")?),
            "--concurrency" => {
                batched_at = it.next().context("--concurrency needs a count")?.parse()?
            }
            other => bail!(
                "unknown flag {other}: use --seconds, --batched-only, --python, --pairs, --threads, --preferred or --concurrency"
            ),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The example repository, plus the classifier again without dynamic batching, for the gain.
    let repo = std::env::temp_dir().join(format!("weir-infer-bench-repo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    for m in ["efficientnet_lite0", "identity_fp32"] {
        copy_dir(&root.join("examples/models").join(m), &repo.join(m))?;
    }
    copy_dir(
        &root.join("examples/models/efficientnet_lite0"),
        &repo.join("unbatched"),
    )?;
    let cfg = std::fs::read_to_string(repo.join("unbatched/config.yaml"))?;
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("dynamic_batching"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(repo.join("unbatched/config.yaml"), cfg)?;
    for m in ["efficientnet_lite0", "unbatched"] {
        let path = repo.join(m).join("config.yaml");
        let cfg = std::fs::read_to_string(&path)?;
        let mut cfg = cfg + &format!("parameters: {{ intra_op_thread_count: {threads} }}\n");
        if let Some(p) = &preferred {
            cfg = cfg.replace(
                "preferred_batch_size: [8, 16]",
                &format!("preferred_batch_size: [{p}]"),
            );
        }
        std::fs::write(&path, cfg)?;
    }
    let yaml = format!("models: {}\n", repo.display());
    let inventory = weir_gpu::Inventory::cpu_only("benchmark");
    let config = Config::parse(Path::new("bench.yaml"), &yaml, &inventory)?;
    let model = config
        .models
        .as_ref()
        .context("no repository")?
        .get("efficientnet_lite0", None)?;
    let data = std::env::temp_dir().join(format!("weir-infer-bench-{}", std::process::id()));
    let settings = Settings::loopback(data.clone());
    let image: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| (i % 256) as f32 / 128.0 - 1.0)
        .collect();
    // Named threads, so that the CPU each part takes can be told apart (`cpu_by_thread`).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("server-http")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("bench-client")
        .worker_threads(weir_gpu::cpu_threads())
        .enable_all()
        .build()?;
    let clients = client_rt.handle().clone();
    rt.block_on(async {
        let running = server::start(&settings, &config).await?;
        let base = format!("http://{}", running.http_addr());
        let client = reqwest::Client::new();
        let cores = weir_gpu::cpu_threads();
        println!(
            "# efficientnet_lite0 ({}, {threads} intra-op threads), one 224x224 image per request, binary tensors, {cores} cores, {seconds} s per row",
            model.backend
        );
        // In process, one caller: the engine alone (tract: one thread; ort: its intra-op threads).
        let input = Tensor::from_f32("input", vec![1, 3, 224, 224], &image);
        let t = Instant::now();
        let mut n = 0;
        while t.elapsed().as_secs_f64() < seconds {
            model.session.run(std::slice::from_ref(&input))?;
            n += 1;
        }
        let direct = n as f64 / t.elapsed().as_secs_f64();
        println!("{:<34} {:>12.1} inferences/s", "in process, one caller", direct);
        let url = format!("{base}/v2/models/efficientnet_lite0/infer");
        let levels: &[usize] = if batched_only { &[8] } else { &[1, 8, 32] };
        for &c in levels {
            let r = load(&clients, &client, &url, Some(request("input", &[1, 3, 224, 224], &image)), c, seconds).await?;
            println!(
                "{:<34} {:>12.1} inferences/s  p50 {:>7.2} ms  ({:.2}x in process)",
                format!("HTTP, concurrency {c}"),
                r.per_sec,
                r.p50_ms,
                r.per_sec / direct
            );
        }
        let stats_url = format!("{base}/v2/models/efficientnet_lite0/stats");
        let before = engine_times(&client, &stats_url).await?;
        let cpu_before = cpu_by_thread();
        let t = Instant::now();
        let body = request("input", &[1, 3, 224, 224], &image);
        let r = load(&clients, &client, &url, Some(body.clone()), batched_at, seconds).await?;
        let after = engine_times(&client, &stats_url).await?;
        let cpu = cpu_by_thread();
        let batches = (after.0 - before.0).max(1) as f64;
        println!(
            "at concurrency {batched_at}: {:.1} rows per batch, {:.1} ms on the engine per batch; the engine ran {:.0}% of the wall time ({:.1} inferences/s)",
            (after.1 - before.1) as f64 / batches,
            (after.2 - before.2) as f64 / batches / 1e6,
            (after.2 - before.2) as f64 / 1e9 / t.elapsed().as_secs_f64() * 100.0,
            r.per_sec
        );
        let done = (after.1 - before.1).max(1) as f64;
        let split: Vec<String> = cpu
            .iter()
            .map(|(name, ms)| {
                let was = cpu_before.get(name).copied().unwrap_or(0.0);
                format!("{name} {:.2}", (ms - was) / done)
            })
            .filter(|s| !s.ends_with(" 0.00"))
            .collect();
        println!("CPU ms per inference by thread (kernel time included): {}", split.join(", "));
        if let Some(python) = &python {
            println!("# against onnxruntime from Python (batch 8, {threads} intra-op threads), alternating");
            let mut py = vec![python_rate(python, &root, threads, seconds)?];
            let mut ratios = Vec::new();
            for _ in 0..pairs {
                let http =
                    load(&clients, &client, &url, Some(body.clone()), batched_at, seconds).await?;
                py.push(python_rate(python, &root, threads, seconds)?);
                let around = (py[py.len() - 2] + py[py.len() - 1]) / 2.0;
                ratios.push(http.per_sec / around);
                println!(
                    "python {:>6.1}   http@{batched_at} {:>6.1}   python {:>6.1}   ratio {:.2}",
                    py[py.len() - 2],
                    http.per_sec,
                    py[py.len() - 1],
                    http.per_sec / around
                );
            }
            ratios.sort_by(f64::total_cmp);
            println!(
                "batched HTTP against direct onnxruntime: median {:.2}x over {} pairs (range {:.2}-{:.2})",
                ratios[ratios.len() / 2],
                ratios.len(),
                ratios[0],
                ratios[ratios.len() - 1]
            );
        }
        if batched_only {
            running.shutdown().await?;
            return anyhow::Ok(());
        }
        let unbatched = format!("{base}/v2/models/unbatched/infer");
        let body = request("input", &[1, 3, 224, 224], &image);
        let off = load(&clients, &client, &unbatched, Some(body.clone()), 8, seconds).await?;
        let on = load(&clients, &client, &url, Some(body.clone()), 8, seconds).await?;
        println!(
            "dynamic batching at concurrency 8: {:.1} vs {:.1} inferences/s without ({:.2}x)",
            on.per_sec,
            off.per_sec,
            on.per_sec / off.per_sec
        );
        // Two models busy at once, each with threads for every core: they take turns on the cores.
        let (a, b) = tokio::join!(
            load(&clients, &client, &url, Some(body.clone()), 8, seconds),
            load(&clients, &client, &unbatched, Some(body), 8, seconds)
        );
        let (a, b) = (a?, b?);
        println!(
            "two models at once (batched and unbatched copies, concurrency 8 each): {:.1} + {:.1} = {:.1} inferences/s",
            a.per_sec,
            b.per_sec,
            a.per_sec + b.per_sec
        );
        println!("# server overhead per request: identity model (16 floats) beside GET /v2/health/live");
        let live = load(&clients, &client, &format!("{base}/v2/health/live"), None, 1, seconds).await?;
        let stats_url = format!("{base}/v2/models/identity_fp32/stats");
        let before = server_times(&client, &stats_url).await?;
        let ident = load(
            &clients,
            &client,
            &format!("{base}/v2/models/identity_fp32/infer"),
            Some(request("INPUT0", &[1, 16], &[0.5; 16])),
            1,
            seconds,
        )
        .await?;
        println!("{:<34} {:>12.1} requests/s    p50 {:>7.3} ms", "GET /v2/health/live", live.per_sec, live.p50_ms);
        println!("{:<34} {:>12.1} requests/s    p50 {:>7.3} ms", "identity infer", ident.per_sec, ident.p50_ms);
        println!(
            "infer work beyond an HTTP round trip: {:.1} us per request (client and server)",
            (ident.p50_ms - live.p50_ms) * 1e3
        );
        let after = server_times(&client, &stats_url).await?;
        let n = (after.0 - before.0).max(1) as f64;
        println!(
            "server-side overhead (request time less queue and compute, as perf_analyzer counts it): {:.1} us per request; compute {:.1} us",
            (after.1 - before.1) as f64 / n / 1e3 - (after.2 - before.2) as f64 / n / 1e3,
            (after.2 - before.2) as f64 / n / 1e3
        );
        running.shutdown().await?;
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(data);
    let _ = std::fs::remove_dir_all(repo);
    Ok(())
}

/// From a model's statistics: (executions, rows, ns inside the engine).
async fn engine_times(client: &reqwest::Client, url: &str) -> anyhow::Result<(u64, u64, u64)> {
    let m = &model_stats(client, url).await?;
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    Ok((
        n(&m["execution_count"]),
        n(&m["inference_count"]),
        n(&m["inference_stats"]["compute_infer"]["ns"]),
    ))
}

/// CPU milliseconds (user + system) this process's threads have used, summed by thread name:
/// `bench-client` the clients, `server-http` Weir's HTTP runtime, `weir-model-*` the batcher's
/// thread (onnxruntime's calling thread), the rest mostly onnxruntime's pool (its threads take the
/// name of the thread that loaded the model).
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        // Fields after the name: state is the 3rd of stat(5); utime and stime the 14th and 15th.
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| f.get(i)?.parse::<f64>().ok())
            .sum();
        // Linux reports these in USER_HZ, 100 per second on every mainstream architecture.
        *by.entry(name).or_insert(0.0) += ticks * 10.0;
    }
    by
}

/// Images per second from `benches/ort_direct.py` at batch 8.
fn python_rate(python: &str, root: &Path, threads: usize, seconds: f64) -> anyhow::Result<f64> {
    let out = std::process::Command::new(python)
        .current_dir(root)
        .arg("benches/ort_direct.py")
        .args([threads.to_string(), "8".into(), seconds.to_string()])
        .output()
        .with_context(|| format!("running {python} benches/ort_direct.py"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "ort_direct.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split(": ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|r| r.parse().ok())
        .with_context(|| format!("no rate in {text:?}"))
}

/// From a model's statistics: (successful requests, their total ns, queue + compute ns).
async fn server_times(client: &reqwest::Client, url: &str) -> anyhow::Result<(u64, u64, u64)> {
    let s = &model_stats(client, url).await?["inference_stats"];
    let ns = |k: &str| s[k]["ns"].as_u64().unwrap_or(0);
    let count = s["success"]["count"].as_u64().unwrap_or(0);
    let spent = ns("queue") + ns("compute_input") + ns("compute_infer") + ns("compute_output");
    Ok((count, ns("success"), spent))
}

/// The one model's entry of `GET /v2/models/{m}/stats`.
async fn model_stats(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&client.get(url).send().await?.bytes().await?)?;
    Ok(v["model_stats"][0].take())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}
