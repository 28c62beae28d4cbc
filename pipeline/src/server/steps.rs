//! The steps of `start` that need more than a few lines: the function pools (with the decode
//! budget and the gauges), and the HTTP API in front of them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_functions::memory::DecodeMemory;
use weir_workers::{Pool, PoolConfig};

use super::{ServeError, Settings};
use crate::config::{Config, LoadedFunction, Trigger};
use crate::http::{self, AppState};

/// A listener on `addr` and the address it got (port 0 picks one); a failure names `addr`.
pub(super) async fn listen(
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let bind = |source| ServeError::Bind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    Ok((listener, local))
}

/// Resolves when `stop` turns true.
pub(super) async fn when(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A pool per function, what `/v1/functions` lists, and the functions' own HTTP paths.
pub(super) struct Pools {
    pub by_name: HashMap<String, Pool>,
    listing: Vec<serde_json::Value>,
    extra_routes: Vec<(String, String)>,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

impl Pools {
    /// Sizes the decode-memory budget (read once: without a setting, from the machine), starts
    /// a pool per function and the gauges' upkeep.
    pub fn start(config: &Config, cpu: &Arc<rayon::ThreadPool>) -> Pools {
        let budget = config.file.decode_memory_budget();
        tracing::info!(
            bytes = budget,
            "decode memory budget: {}",
            bytesize::ByteSize(budget)
        );
        for f in &config.functions {
            let worst = f.function.limits().max_decode_bytes;
            if let Some(note) = budget_note(&f.spec.name, worst, budget) {
                tracing::warn!("{note}");
            }
        }
        let decode_memory = DecodeMemory::new(budget);
        let (mut by_name, mut listing, mut extra_routes) = (HashMap::new(), Vec::new(), Vec::new());
        for f in &config.functions {
            let pool = Pool::new(
                f.function.clone(),
                pool_config(f, &decode_memory),
                cpu.clone(),
            );
            listing.push(describe(f, &pool));
            for t in &f.spec.triggers {
                if let Trigger::Http(h) = t {
                    extra_routes.push((h.path.clone(), f.spec.name.clone()));
                }
            }
            by_name.insert(f.spec.name.clone(), pool);
        }
        let prometheus = crate::telemetry::prometheus();
        metrics::gauge!(crate::metric_names::DECODE_MEMORY_BUDGET).set(budget as f64);
        // The models loaded with the config, before the recorder was there to hear of it.
        if let Some(repo) = &config.models {
            repo.publish_memory();
        }
        let upkeep = prometheus.clone();
        tokio::spawn(async move {
            use crate::metric_names as m;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                metrics::gauge!(m::DECODE_MEMORY_IN_USE).set(decode_memory.in_use() as f64);
                upkeep.run_upkeep();
            }
        });
        Pools {
            by_name,
            listing,
            extra_routes,
            prometheus,
        }
    }
}

/// What the HTTP API is wired to besides the pools.
pub(super) struct Wired<'a> {
    pub dispatch: &'a crate::dispatch::Dispatch,
    pub store: &'a Arc<dyn crate::store::ObjectStore>,
    /// Where request bodies of streaming functions are spooled (`<data>/tmp`).
    pub spool_dir: PathBuf,
}

/// The HTTP API, bound; it stops accepting when `stop` turns true, and then closes the pools
/// (requests on open connections get 503; admitted ones finish and reply).
pub(super) async fn serve_http(
    settings: &Settings,
    config: &Config,
    pools: Pools,
    cpu: &Arc<rayon::ThreadPool>,
    wired: Wired<'_>,
    stop: &watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), ServeError> {
    let Wired {
        dispatch,
        store,
        spool_dir,
    } = wired;
    let closing: Vec<Pool> = pools.by_name.values().cloned().collect();
    let h = &config.file.http;
    let state = Arc::new(AppState {
        pools: pools.by_name,
        listing: pools.listing,
        token: settings.token.clone(),
        prometheus: pools.prometheus,
        events: Some(dispatch.events.clone()),
        jobs: Some(dispatch.jobs.clone()),
        asynchronous: Some(http::invocations::Asynchronous {
            results: dispatch.results.clone(),
            max_body: config.file.invocations.max_body,
            max_queued: config.file.invocations.max_queued,
            receiving: tokio::sync::Semaphore::new(http::invocations::RECEIVING),
        }),
        models: config.models.clone(),
        inference_token: settings.inference_token.clone(),
        inference: http::v2::Inference {
            body_timeout: h.body_timeout,
            ..http::v2::Inference::new(
                cpu.clone(),
                h.max_inference_requests,
                usize::try_from(h.max_inference_body).unwrap_or(usize::MAX),
            )
        },
        spool_dir,
        bodies: http::body::BodyLimits {
            timeout: h.body_timeout,
            max_event_body: usize::try_from(h.max_event_body).unwrap_or(usize::MAX),
        },
        readiness: http::ready::Readiness {
            store: store.clone(),
            bucket: config
                .functions
                .iter()
                .find_map(|f| f.spec.output.as_ref().map(|o| o.bucket.clone())),
        },
    });
    let app = http::router(state, &pools.extra_routes);
    let (listener, addr) = listen(settings.http_listen).await?;
    let stopped = when(stop.clone());
    let shutdown = async move {
        stopped.await;
        for p in &closing {
            p.close();
        }
    };
    let task = tokio::spawn(http::serve(listener, app, settings.http_limits, shutdown));
    Ok((addr, task))
}

/// A word at start when a function's largest allowed picture could need more than the whole
/// decode budget: such pictures are refused (422) rather than decoded.
fn budget_note(function: &str, worst: u64, budget: u64) -> Option<String> {
    (worst > budget).then(|| {
        format!(
            "function {function}: its largest allowed picture may need {} of decode memory, \
             more than decode_memory_budget ({}); such pictures will be refused",
            bytesize::ByteSize(worst),
            bytesize::ByteSize(budget)
        )
    })
}

fn pool_config(f: &LoadedFunction, decode_memory: &Arc<DecodeMemory>) -> PoolConfig {
    let r = &f.spec.resources;
    PoolConfig {
        name: f.spec.name.clone(),
        workers: r.workers.max,
        max_batch: r.batch.max_size,
        max_delay: r.batch.max_delay,
        max_queue: r.queue,
        timeout: r.timeout,
        max_input: r.max_input,
        retry_after: Duration::from_secs(1),
        device: f.device,
        decode_memory: decode_memory.clone(),
    }
}

fn describe(f: &LoadedFunction, pool: &Pool) -> serde_json::Value {
    let c = pool.config();
    let paths: Vec<String> = std::iter::once(format!("/v1/functions/{}/invoke", f.spec.name))
        .chain(f.spec.triggers.iter().filter_map(|t| match t {
            Trigger::Http(h) => Some(h.path.clone()),
            Trigger::S3(_) | Trigger::Poll(_) | Trigger::Nats(_) | Trigger::Cron(_) => None,
        }))
        .collect();
    json!({
        "name": f.spec.name,
        "kind": f.spec.kind.as_str(),
        "device": f.device.to_string(),
        "invoke": paths,
        "resources": {
            "workers": c.workers, "max_batch": c.max_batch,
            "max_delay_ms": c.max_delay.as_millis() as u64, "queue": c.max_queue,
            "capacity": c.capacity(), "timeout_ms": c.timeout.as_millis() as u64,
            "max_input": c.max_input,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_under_the_largest_picture_is_named_at_start() {
        assert_eq!(budget_note("thumbs", 800 << 20, 1 << 30), None);
        let note = budget_note("thumbs", 800 << 20, 256 << 20).unwrap();
        assert!(
            note.contains("thumbs") && note.contains("256.0 MiB"),
            "{note}"
        );
    }
}
