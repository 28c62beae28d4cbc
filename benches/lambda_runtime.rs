//! The cost of one invocation through Weir's Lambda Runtime API with a handler that does
//! nothing: a `process` function called directly (no HTTP front door), its one warm worker the
//! Rust handler built on AWS's `lambda_runtime` (examples/lambda/rust), so what is measured is
//! Weir handing the event over (`next`), the answer coming back (`response`), and the runtime
//! client's own work between — the per-invocation overhead of the runtime API.
//!
//! Each invocation's time is also split in two: how long the process held it (from its `next`
//! answer to its `response`: Weir's `weir_process_duration_seconds`, Lambda's "Duration", which
//! covers the loopback both ways and the runtime client's work), and the rest, which is Weir's
//! own (the hop into the process kind's runtime, the lease, handing over, taking the answer and
//! waking the caller).
//!
//!   lambda-runtime-bench [CALLS] [HANDLER...]
//!
//! CALLS defaults to 5000; HANDLER to `weir-lambda-rust` beside this binary. Prints the mean,
//! p50 and p99 in microseconds.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

use weir_functions::kinds::{self, BuildCtx};
use weir_functions::process::Sizes;
use weir_functions::{ExecCtx, Input, Started};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let calls: usize = args.first().map_or(Ok(5000), |a| a.parse())?;
    let command: Vec<String> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        let exe = std::env::current_exe()?;
        let dir = exe.parent().unwrap_or(std::path::Path::new("."));
        vec![dir.join("weir-lambda-rust").display().to_string()]
    };
    let held = Arc::new(Held::default());
    metrics::set_global_recorder(HeldRecorder(held.clone()))
        .map_err(|e| anyhow::anyhow!("cannot install the recorder: {e}"))?;
    let params = serde_yaml::to_value(serde_json::json!({ "command": command }))?;
    let ctx = BuildCtx {
        name: "bench",
        workers: Sizes {
            min: 1,
            max: 1,
            idle_after: std::time::Duration::from_secs(3600),
        },
        ..Default::default()
    };
    let f = kinds::find("process")?
        .build(&params, ctx)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let scratch = std::env::temp_dir().join(format!("lambda-runtime-bench-{}", std::process::id()));
    f.start(&Started {
        store_env: Default::default(),
        scratch: scratch.clone(),
    });
    let exec = ExecCtx::unbounded(1);
    let event = Input::new(&b"{\"n\":1}"[..]);
    // One call: (its whole time, how long the process held it), in µs.
    let one = |gap: std::time::Duration| -> anyhow::Result<(f64, f64)> {
        std::thread::sleep(gap);
        held.take();
        let t = Instant::now();
        let out = f.call(std::slice::from_ref(&event), &exec);
        let took = t.elapsed().as_secs_f64() * 1e6;
        match out.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => anyhow::bail!("the invocation failed: {e}"),
            None => anyhow::bail!("no result"),
        }
        match held.take().as_slice() {
            [h] => Ok((took, h * 1e6)),
            other => anyhow::bail!("{} durations recorded for one invocation", other.len()),
        }
    };
    // Back to back, each call waits for the process to ask again after its last answer (the
    // runtime client reads Weir's 202, then polls `next`); 2 ms apart, the process is already
    // waiting, as at any load below one call at a time.
    for (how, gap) in [("back to back", 0), ("2 ms apart", 2000)] {
        let gap = std::time::Duration::from_micros(gap);
        for _ in 0..calls.min(500) {
            one(gap)?;
        }
        let (mut total, mut process, mut weir) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..calls {
            let (t, h) = one(gap)?;
            total.push(t);
            process.push(h);
            weir.push(t - h);
        }
        println!(
            "{calls} invocations through the runtime API, {how} ({}): {}",
            command.join(" "),
            summary(&mut total)
        );
        println!(
            "  held by the process (loopback both ways, the runtime client, the handler): {}",
            summary(&mut process)
        );
        println!("  Weir's own part (the rest): {}", summary(&mut weir));
    }
    let _ = std::fs::remove_dir_all(scratch);
    let floor = round_trips(calls)?;
    println!(
        "{calls} plain HTTP/1.1 round trips on loopback (reqwest to axum, keep-alive, one thread each side): p50 {:.1} µs, p99 {:.1} µs",
        floor.0, floor.1
    );
    Ok(())
}

/// `mean …, p50 …, p99 …` of `us`.
fn summary(us: &mut [f64]) -> String {
    us.sort_by(f64::total_cmp);
    let mean = us.iter().sum::<f64>() / us.len() as f64;
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
    format!(
        "mean {mean:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        at(0.5),
        at(0.99)
    )
}

/// The values of `weir_process_duration_seconds` since the last `take`.
#[derive(Default)]
struct Held(Mutex<Vec<f64>>);

impl Held {
    fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl metrics::HistogramFn for Held {
    fn record(&self, value: f64) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(value);
    }
}

/// A recorder that keeps the process's durations and drops every other metric.
struct HeldRecorder(Arc<Held>);

impl Recorder for HeldRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        if key.name() == weir_functions::metric_names::PROCESS_DURATION {
            Histogram::from_arc(self.0.clone())
        } else {
            Histogram::noop()
        }
    }
}

/// The floor: one keep-alive HTTP request and answer on loopback, client and server in tokio.
fn round_trips(calls: usize) -> anyhow::Result<(f64, f64)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app =
            axum::Router::new().route("/", axum::routing::post(|b: bytes::Bytes| async move { b }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let mut us = Vec::with_capacity(calls);
        for i in 0..calls + 500 {
            let t = Instant::now();
            client
                .post(format!("http://{addr}/"))
                .body("{\"n\":1}")
                .send()
                .await?
                .bytes()
                .await?;
            if i >= 500 {
                us.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
        us.sort_by(f64::total_cmp);
        let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
        Ok((at(0.5), at(0.99)))
    })
}
