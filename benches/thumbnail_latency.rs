//! One photo through Weir's HTTP endpoint as its users feel it: one client at a time (latency
//! p50/p99 and the server's CPU per photo, for each reply format), then four clients in a closed
//! loop (photos per second); and what rendering the JSON reply (base64 artifacts) costs on its own.
//! `benches/compare_thumbnail_http.sh` runs it alternately with libvips.
//!
//!   cargo run --release -p weir-benches --bin thumbnail-latency-bench -- [--photo NAME] [--requests N] [--seconds S]
//!
//! The server runs in this process on 127.0.0.1 with the example's function (256 + 1024, JPEG q80).
//! The client shares the process, so "cpu ms" includes reqwest's receiving of the reply (small
//! beside the function; the same for every reply format but the one that sends less).

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use weir_functions::thumbnail::{Format, Thumbnail, ThumbnailParams};
use weir_functions::{ExecCtx, Input};
use weir_pipeline::config::Config;
use weir_pipeline::server::{self, Settings};

#[path = "thumbs_server.rs"]
mod thumbs_server;
use thumbs_server::{CONFIG, cpu_seconds};

struct Args {
    photo: String,
    requests: usize,
    seconds: f64,
    clients: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        photo: "mountains_1920x1440.jpg".into(),
        requests: 60,
        seconds: 8.0,
        clients: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--photo" => a.photo = value,
            "--requests" => a.requests = value.parse()?,
            "--seconds" => a.seconds = value.parse()?,
            "--clients" => a.clients = value.parse()?,
            other => bail!("unknown flag {other}: use --photo, --requests, --seconds or --clients"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// One request in the given reply format; fails unless the server answered 200.
async fn post(client: &reqwest::Client, url: &str, reply: &str, body: &[u8]) -> anyhow::Result<()> {
    let mut req = client.post(url).body(body.to_vec());
    match reply {
        "multipart" => req = req.header("accept", "multipart/mixed"),
        "first" => req = req.query(&[("return", "first")]),
        _ => {}
    }
    let res = req.send().await?;
    ensure!(res.status() == 200, "HTTP {}", res.status());
    res.bytes().await?;
    Ok(())
}

/// The JSON reply rendered alone (base64 and serialisation, as the server does it) against the
/// first artifact alone, for this photo's real output.
fn reply_cost(photo: &[u8]) -> anyhow::Result<()> {
    use weir_pipeline::http::reply::{Form, render};
    let f = Thumbnail::new(ThumbnailParams::new(vec![256, 1024], Format::Jpeg, 80))
        .map_err(|(field, msg)| anyhow::anyhow!("{field}: {msg}"))?;
    let output = f.run_one(&Input::new(photo.to_vec()), &ExecCtx::unbounded(1), 0)?;
    let bytes: usize = output.artifacts.iter().map(|a| a.bytes.len()).sum();
    let reps = 200;
    let time = |form: Form| {
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(render(form, "thumbs", output.clone()));
        }
        t.elapsed().as_secs_f64() / f64::from(reps) * 1e3
    };
    let (json, first) = (time(Form::Json), time(Form::First));
    println!(
        "# the reply rendered alone, {} KB of artifacts, {reps} times",
        bytes / 1000
    );
    println!(
        "reply ms: json {json:.3}  first {first:.3}  json per 200 KB {:.3}",
        json * 200_000.0 / bytes as f64
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(a))
}

async fn run(a: Args) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(&a.photo);
    let body = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let data = std::env::temp_dir().join(format!("weir-latency-bench-{}", std::process::id()));
    let config = Config::parse(
        Path::new("bench.yaml"),
        CONFIG,
        &weir_gpu::Inventory::cpu_only("bench"),
    )?;
    let running = server::start(&Settings::loopback(data.clone()), &config).await?;
    let url = format!("http://{}/v1/functions/thumbs/invoke", running.http_addr());
    let client = reqwest::Client::new();
    println!(
        "# {} 256+1024 JPEG q80 over HTTP, {} cores; one client: {} requests per reply format",
        a.photo,
        weir_gpu::cpu_threads(),
        a.requests
    );
    println!(
        "{:<10} {:>8} {:>8} {:>8}",
        "reply", "p50 ms", "p99 ms", "cpu ms"
    );
    for _ in 0..5 {
        post(&client, &url, "json", &body).await?;
    }
    for reply in ["json", "first", "multipart"] {
        let mut times = Vec::with_capacity(a.requests);
        let cpu0 = cpu_seconds();
        for _ in 0..a.requests {
            let t = Instant::now();
            post(&client, &url, reply, &body).await?;
            times.push(t.elapsed());
        }
        let cpu = (cpu_seconds() - cpu0) / a.requests as f64;
        times.sort();
        println!(
            "{reply:<10} {:>8.1} {:>8.1} {:>8.1}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            cpu * 1e3
        );
    }
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let t = Instant::now();
    let clients = (0..a.clients).map(|_| {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            let mut done = 0usize;
            while Instant::now() < until {
                post(&client, &url, "json", &body).await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        })
    });
    let mut done = 0;
    for r in futures::future::join_all(clients).await {
        done += r??;
    }
    let rate = done as f64 / t.elapsed().as_secs_f64();
    println!("# {} clients in a closed loop, JSON replies", a.clients);
    println!("saturated img/s {rate:.1}");
    running.shutdown().await?;
    reply_cost(&body)?;
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
