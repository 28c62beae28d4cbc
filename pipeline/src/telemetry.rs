//! The Prometheus recorder (installed once per process) and logging set-up.

use std::sync::OnceLock;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use weir_workers::metric_names as m;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// The process-wide recorder. Servers started in one process (tests) share it.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(m::BATCH_SIZE.into()), BATCH))
                .and_then(|b| {
                    let name = weir_models::metric_names::MODEL_BATCH_SIZE;
                    b.set_buckets_for_metric(Matcher::Full(name.into()), BATCH)
                })
                .unwrap_or_else(|e| panic!("metric buckets are constants and valid: {e}"));
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        m::INVOCATIONS,
        "Invocations finished, by function and outcome kind."
    );
    describe_histogram!(
        m::QUEUE_WAIT,
        Unit::Seconds,
        "Time from admission to the start of the batch."
    );
    describe_histogram!(m::BATCH_SIZE, Unit::Count, "Inputs per batch run.");
    describe_histogram!(
        m::FUNCTION_DURATION,
        Unit::Seconds,
        "Compute time of one batch."
    );
    describe_gauge!(m::IN_FLIGHT, "Invocations admitted and not yet finished.");
    describe_counter!(
        crate::metric_names::HTTP_RESPONSES,
        "HTTP responses by route and status."
    );
}

/// Logs to stderr; `RUST_LOG` filters (default `info`). `WEIR_LOG_FORMAT=json` writes one JSON
/// object a line (for log collectors, and for tests that read a node's log); colours only on a
/// terminal.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("WEIR_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
