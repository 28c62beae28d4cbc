//! Thumbnails through Weir's HTTP endpoint with all cores busy, beside the same function called in
//! process on all cores, in one run: what the HTTP hop costs.
//!
//!   cargo run --release -p weir-benches --bin http-thumbnail-bench -- [--requests N] [--concurrency C]
//!
//! The server runs in this process on 127.0.0.1 with the example's function (256 + 1024, JPEG q80);
//! C clients (default: twice the cores) post each photo N times in all and ask for multipart replies.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use rayon::prelude::*;
use weir_functions::thumbnail::{Format, Thumbnail, ThumbnailParams};
use weir_functions::{ExecCtx, Input};
use weir_pipeline::config::Config;
use weir_pipeline::server::{self, Settings};

#[path = "thumbs_server.rs"]
mod thumbs_server;
use thumbs_server::{CONFIG, cpu_seconds};

#[path = "photos.rs"]
mod photos;

fn main() -> anyhow::Result<()> {
    let cores = weir_gpu::cpu_threads();
    let (mut requests, mut concurrency) = (cores * 24, cores * 2);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()?;
        match flag.as_str() {
            "--requests" => requests = value,
            "--concurrency" => concurrency = value,
            other => bail!("unknown flag {other}: use --requests or --concurrency"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cores, requests, concurrency.max(1)))
}

async fn run(cores: usize, requests: usize, concurrency: usize) -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let data = std::env::temp_dir().join(format!("weir-http-bench-{}", std::process::id()));
    let config = Config::parse(
        Path::new("bench.yaml"),
        CONFIG,
        &weir_gpu::Inventory::cpu_only("bench"),
    )?;
    let settings = Settings::loopback(data.clone());
    let running = server::start(&settings, &config).await?;
    let url = format!("http://{}/v1/functions/thumbs/invoke", running.http_addr());
    let client = reqwest::Client::new();
    let all = rayon::ThreadPoolBuilder::new().num_threads(cores).build()?;
    let f = Thumbnail::new(ThumbnailParams::new(vec![256, 1024], Format::Jpeg, 80))
        .map_err(|(field, msg)| anyhow::anyhow!("{field}: {msg}"))?;
    println!(
        "# thumbnail 256+1024 JPEG q80, {requests} per photo, {cores} cores, {concurrency} HTTP clients"
    );
    println!(
        "{:<40} {:>16} {:>12} {:>10} {:>9} {:>9} {:>10}",
        "photo", "in process img/s", "HTTP img/s", "HTTP/in", "cpu in", "cpu HTTP", "in flight"
    );
    for photos::Photo { name, bytes, .. } in photos::at_least(&dir, 1280)? {
        let input = Input::new(bytes.clone());
        let ctx = ExecCtx::unbounded(1);
        let (t, cpu0) = (Instant::now(), cpu_seconds());
        all.install(|| {
            (0..requests)
                .into_par_iter()
                .try_for_each(|_| f.run_one(&input, &ctx, 0).map(drop))
        })
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let direct = requests as f64 / t.elapsed().as_secs_f64();
        let cpu_direct = (cpu_seconds() - cpu0) / (t.elapsed().as_secs_f64() * cores as f64);

        let (t, cpu0) = (Instant::now(), cpu_seconds());
        let stats_url = url.replace("/thumbs/invoke", "");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (client, stats_url, stop) = (client.clone(), stats_url.clone(), stop.clone());
            tokio::spawn(async move {
                // How many invocations the server holds: below the cores, it is waiting on clients.
                let mut samples = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    let Ok(res) = client.get(&stats_url).send().await else {
                        break;
                    };
                    let Ok(body) = res.bytes().await else { break };
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    samples.push(
                        v["functions"][0]["stats"]["in_flight"]
                            .as_f64()
                            .unwrap_or(0.0),
                    );
                }
                samples.iter().sum::<f64>() / samples.len().max(1) as f64
            })
        };
        let per_client = requests.div_ceil(concurrency);
        let clients = (0..concurrency).map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), bytes.clone());
            tokio::spawn(async move {
                for _ in 0..per_client {
                    let res = client
                        .post(&url)
                        .header("accept", "multipart/mixed")
                        .body(body.clone())
                        .send()
                        .await?;
                    ensure!(res.status() == 200, "HTTP {}", res.status());
                    res.bytes().await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        });
        for r in futures::future::join_all(clients).await {
            r??;
        }
        let http = (per_client * concurrency) as f64 / t.elapsed().as_secs_f64();
        let cpu_http = (cpu_seconds() - cpu0) / (t.elapsed().as_secs_f64() * cores as f64);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let in_flight = sampler.await?;
        println!(
            "{name:<40} {direct:>16.1} {http:>12.1} {:>10.2} {:>8.0}% {:>8.0}% {in_flight:>10.1}",
            http / direct,
            cpu_direct * 100.0,
            cpu_http * 100.0
        );
    }
    running.shutdown().await?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
