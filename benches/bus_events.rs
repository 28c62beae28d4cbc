//! Events per second through Weir's whole event path (notification → bus → consumer → a no-op
//! function → ack) on the embedded bus and on NATS JetStream, beside the raw JetStream rate
//! (confirmed publish, pull, confirmed ack) that this harness measures on the same server in the
//! same run. Every event is durable before its notification is answered, on both buses.
//!
//!   cargo build --release -p weir-pipeline -p weir-benches
//!   target/release/bus-events-bench [--events 20000] [--weir target/release/weir]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Records per notification POST, and POSTs in flight at once (a store's webhook sender).
const RECORDS_PER_POST: usize = 100;
const POSTERS: usize = 4;

struct Args {
    events: usize,
    weir: PathBuf,
    /// Run only this path (raw, jetstream, embedded), e.g. under a profiler.
    only: Option<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        events: 20_000,
        weir: PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or("target".into()))
            .join("release/weir"),
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--events" => a.events = value.parse()?,
            "--weir" => a.weir = value.into(),
            "--only" => a.only = Some(value),
            _ => bail!(
                "unknown flag {flag}; use --events N --weir PATH --only raw|jetstream|embedded"
            ),
        }
    }
    Ok(a)
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn nats_server(dir: &Path) -> anyhow::Result<(Proc, String)> {
    let port = free_port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("nats-server (./test.sh installs Debian's)")?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            bail!("nats-server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Proc(child), format!("nats://127.0.0.1:{port}")))
}

/// Publish `n` messages (each confirmed, a message id each), pull them in batches and
/// double-ack each (confirmed), publishing and consuming at once; events per second.
async fn raw_jetstream(url: &str, n: usize, payload: bytes::Bytes) -> anyhow::Result<f64> {
    use async_nats::jetstream::{self, consumer::pull, stream};
    let js = jetstream::new(async_nats::connect(url).await?);
    let s = js
        .create_stream(stream::Config {
            name: "raw".into(),
            subjects: vec!["raw.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let consumer = s
        .create_consumer(pull::Config {
            durable_name: Some("raw".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            let chunks: Vec<Vec<usize>> = (0..n)
                .collect::<Vec<_>>()
                .chunks(RECORDS_PER_POST)
                .map(<[usize]>::to_vec)
                .collect();
            futures::stream::iter(chunks)
                .map(|chunk| {
                    let (js, payload) = (js.clone(), payload.clone());
                    async move {
                        let sends = chunk.into_iter().map(|i| {
                            let mut h = async_nats::HeaderMap::new();
                            h.insert("Nats-Msg-Id", format!("raw-{i}").as_str());
                            let (js, payload) = (js.clone(), payload.clone());
                            async move { js.publish_with_headers("raw.fn", h, payload).await?.await }
                        });
                        futures::future::try_join_all(sends).await.map(drop)
                    }
                })
                .buffer_unordered(POSTERS)
                .try_collect::<Vec<()>>()
                .await
        })
    };
    let mut acked = 0;
    while acked < n {
        let batch = consumer
            .fetch()
            .max_messages(256)
            .expires(Duration::from_secs(1));
        let messages: Vec<_> = batch
            .messages()
            .await?
            .try_collect()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let acks = messages.iter().map(|m| m.double_ack());
        futures::future::try_join_all(acks)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        acked += messages.len();
    }
    publisher.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `n` small objects in `<data>/objects`, written through the local store's own code before
/// Weir starts on the folder.
fn objects(data: &Path, n: usize) -> anyhow::Result<()> {
    let store = weir_pipeline::store::LocalStore::open(&data.join("objects"))?;
    store.create_bucket("uploads")?;
    for i in 0..n {
        store.put("uploads", &format!("e/{i:06}"), b"sixteen bytes...")?;
    }
    Ok(())
}

fn record(i: usize, run: &str) -> String {
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"aws:s3","eventTime":"2026-12-06T00:00:00.000Z","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"uploads"}},"object":{{"key":"e/{i:06}","size":16,"sequencer":"{run}"}}}}}}"#
    )
}

/// `weir serve` with a `noop` function on `bus`; `n` notifications posted, timed until
/// `weir_events_done_total` says all ran; events per second.
async fn weir_path(args: &Args, dir: &Path, name: &str, bus: &str) -> anyhow::Result<f64> {
    let config = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!(
            r#"
{bus}
functions:
  - name: noop
    kind: noop
    params: {{}}
    triggers:
      - s3: {{ bucket: uploads }}
    output: {{ bucket: derived, key: "noop/{{key}}" }}
    resources: {{ queue: 1024, batch: {{ max_size: 64, max_delay: 1ms }} }}
"#
        ),
    )?;
    let port = free_port();
    let mut child = Command::new(&args.weir)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("WEIR_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", args.weir.display()))?;
    let mut banner = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut banner)?;
    let _weir = Proc(child);
    if !banner.contains("serving") {
        bail!("weir did not start: {banner}");
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let records: Vec<String> = (0..args.events).map(|i| record(i, name)).collect();
    let started = Instant::now();
    let posts = records.chunks(RECORDS_PER_POST).map(|chunk| {
        let body = format!(r#"{{"Records":[{}]}}"#, chunk.join(","));
        let (client, url) = (client.clone(), format!("{base}/v1/events/s3"));
        async move {
            loop {
                let res = client.post(&url).body(body.clone()).send().await?;
                match res.status().as_u16() {
                    200 => return anyhow::Ok(()),
                    429 | 503 => tokio::time::sleep(Duration::from_millis(20)).await,
                    s => bail!("the webhook answered {s}: {}", res.text().await?),
                }
            }
        }
    });
    let posting = async {
        let all = futures::stream::iter(posts).buffer_unordered(POSTERS);
        all.try_collect::<Vec<()>>().await?;
        // How fast the front door records, apart from how fast the consumers finish.
        eprintln!(
            "{name}: {} notifications recorded in {:.2} s",
            args.events,
            started.elapsed().as_secs_f64()
        );
        anyhow::Ok(())
    };
    let watching = async {
        loop {
            let text = client
                .get(format!("{base}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            let done = metric(&text, "weir_events_done_total", r#"function="noop""#);
            if done as usize >= args.events {
                let took = started.elapsed();
                let batches = metric(&text, "weir_batch_size_count", r#"function="noop""#);
                let sum = metric(&text, "weir_batch_size_sum", r#"function="noop""#);
                let each = sum / batches.max(1.0);
                eprintln!("{name}: {batches} batches, {each:.1} events each");
                return anyhow::Ok(took);
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("{done} of {} events done after 600 s", args.events);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (posted, took) = tokio::join!(posting, watching);
    posted?;
    Ok(args.events as f64 / took?.as_secs_f64())
}

/// The sum of a metric's series whose labels contain `labels`, in a Prometheus text page.
fn metric(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let dir = std::env::temp_dir().join(format!("weir-bus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    let (_nats, url) = nats_server(&dir.join("nats"))?;
    objects(&dir.join("data"), args.events)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A raw message as big as the event Weir stores for each notification.
    let payload = bytes::Bytes::from(vec![b'x'; record(0, "raw").len()]);
    let run = |name: &str| args.only.as_deref().is_none_or(|o| o == name);
    let raw = if run("raw") {
        raw_jetstream(&url, args.events, payload).await?
    } else {
        0.0
    };
    let embedded = if run("embedded") {
        weir_path(args, dir, "embedded", "bus: { kind: embedded }").await?
    } else {
        0.0
    };
    let nats = if run("jetstream") {
        let bus = format!(r#"bus: {{ kind: nats, url: "{url}", stream: weir }}"#);
        weir_path(args, dir, "nats", &bus).await?
    } else {
        0.0
    };
    println!(
        "{} events, {cores} cores, one run each (events/s)",
        args.events
    );
    println!("raw JetStream (publish+pull+ack)  {raw:>9.0}");
    println!(
        "Weir on JetStream                 {nats:>9.0}  {:.2}x raw",
        nats / raw
    );
    println!(
        "Weir on the embedded bus          {embedded:>9.0}  {:.0} per core",
        embedded / cores as f64
    );
    println!(
        "{}",
        serde_json::json!({
            "events": args.events, "cores": cores, "raw_jetstream": raw,
            "weir_jetstream": nats, "weir_embedded": embedded,
            "jetstream_ratio": nats / raw, "embedded_per_core": embedded / cores as f64,
        })
    );
    Ok(())
}
