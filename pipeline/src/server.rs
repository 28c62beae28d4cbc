//! `weir serve`: settings resolved, pools started, the HTTP API bound, graceful shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_functions::memory::DecodeMemory;
use weir_workers::{Pool, PoolConfig, cpu_pool};

use crate::config::{Config, LoadedFunction, StoreSection, Trigger};
use crate::http::{self, AppState};
use crate::store::{LocalStore, ObjectStore};

/// Settings after precedence is applied (flag, environment, config file, default).
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub http_listen: SocketAddr,
    pub s3_listen: SocketAddr,
    pub token: Option<String>,
    pub inference_token: Option<String>,
    /// Allow a non-loopback address without a token.
    pub insecure: bool,
    /// The S3 endpoint's access key and secret key.
    pub s3_keys: (String, String),
    pub http_limits: http::Limits,
}

impl Settings {
    /// Both endpoints on free loopback ports, no token, test keys for S3: a server for tests and
    /// benchmarks, started in process.
    pub fn loopback(data_dir: PathBuf) -> Settings {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Settings {
            data_dir,
            http_listen: any,
            s3_listen: any,
            token: None,
            inference_token: None,
            insecure: false,
            s3_keys: ("test-access".into(), "test-secret-key".into()),
            http_limits: http::Limits::default(),
        }
    }
}

pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
pub const DEFAULT_S3: &str = "127.0.0.1:9000";

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to serve on {0} without a token: anyone who can reach it could run functions. \
         Set http.token (or WEIR_TOKEN), listen on 127.0.0.1, or pass --insecure"
    )]
    Insecure(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the object store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot start storage events: {0}")]
    Events(#[from] crate::dispatch::StartError),
    #[error("cannot start the bucket pollers: {0}")]
    Pollers(#[from] crate::triggers::poll_state::StateError),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A server started on the current runtime.
pub struct Running {
    addr: SocketAddr,
    /// How long shutdown waits for admitted work: the longest function timeout, plus a margin.
    grace: Duration,
    /// The built-in S3 endpoint's address: there is none with `store: s3`.
    s3_addr: Option<SocketAddr>,
    /// The local store, when objects live there.
    store: Option<LocalStore>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn start(settings: &Settings, config: &Config) -> Result<Running, ServeError> {
    if !settings.http_listen.ip().is_loopback() && settings.token.is_none() && !settings.insecure {
        return Err(ServeError::Insecure(settings.http_listen));
    }
    std::fs::create_dir_all(&settings.data_dir).map_err(|source| ServeError::DataDir {
        path: settings.data_dir.clone(),
        source,
    })?;
    let cpu = cpu_pool(weir_gpu::cpu_threads());
    // Read once: without a setting it is sized from the machine.
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
    let mut pools = HashMap::new();
    let mut listing = Vec::new();
    let mut extra_routes = Vec::new();
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
        pools.insert(f.spec.name.clone(), pool);
    }
    let prometheus = crate::telemetry::prometheus();
    metrics::gauge!(crate::metric_names::DECODE_MEMORY_BUDGET).set(budget as f64);
    let upkeep = prometheus.clone();
    let decoding = decode_memory.clone();
    tokio::spawn(async move {
        use crate::metric_names as m;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            metrics::gauge!(m::DECODE_MEMORY_IN_USE).set(decoding.in_use() as f64);
            upkeep.run_upkeep();
        }
    });
    let spool_dir = settings.data_dir.join("tmp");
    std::fs::create_dir_all(&spool_dir).map_err(|source| ServeError::DataDir {
        path: spool_dir.clone(),
        source,
    })?;
    let (local, store) = open_store(settings, config, &spool_dir).await?;
    let events = std::sync::Arc::new(
        crate::dispatch::start(&settings.data_dir, &store, &config.functions, &pools).await?,
    );
    let closing: Vec<Pool> = pools.values().cloned().collect();
    let state = std::sync::Arc::new(AppState {
        pools,
        listing,
        token: settings.token.clone(),
        prometheus,
        events: Some(events.clone()),
        models: config.models.clone(),
        inference_token: settings.inference_token.clone(),
        inference: http::v2::Inference {
            body_timeout: config.file.http.body_timeout,
            ..http::v2::Inference::new(
                cpu.clone(),
                config.file.http.max_inference_requests,
                usize::try_from(config.file.http.max_inference_body).unwrap_or(usize::MAX),
            )
        },
        spool_dir,
        bodies: http::body::BodyLimits {
            timeout: config.file.http.body_timeout,
            max_event_body: usize::try_from(config.file.http.max_event_body).unwrap_or(usize::MAX),
        },
    });
    let app = http::router(state, &extra_routes);
    let listener = tokio::net::TcpListener::bind(settings.http_listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.http_listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.http_listen,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let pollers = crate::triggers::start_pollers(
        &config.functions,
        &store,
        &events,
        &settings.data_dir,
        &stopped,
    )?;
    let when_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let http_stopped = when_stopped(stopped.clone());
    let shutdown = async move {
        http_stopped.await;
        // The listener closes now; requests already on open connections find the pools closed
        // (503), and admitted ones finish and reply.
        for p in &closing {
            p.close();
        }
    };
    let mut tasks = vec![tokio::spawn(http::serve(
        listener,
        app,
        settings.http_limits,
        shutdown,
    ))];
    tasks.extend(pollers);
    let s3_addr = match &local {
        Some(local) => {
            spawn_upload_expiry(local.clone(), config.file.s3.multipart_expiry);
            let (addr, task) =
                serve_s3(settings, config, local, events, when_stopped(stopped)).await?;
            tasks.push(task);
            Some(addr)
        }
        None => None,
    };
    let grace = config
        .functions
        .iter()
        .map(|f| f.spec.resources.timeout)
        .max()
        .unwrap_or_default()
        + Duration::from_secs(5);
    Ok(Running {
        addr,
        s3_addr,
        store: local,
        grace,
        stop,
        tasks,
    })
}

/// The store the configuration names. Only the local store has the built-in S3 endpoint in
/// front of it, so only it is returned as well.
async fn open_store(
    settings: &Settings,
    config: &Config,
    spool_dir: &std::path::Path,
) -> Result<(Option<LocalStore>, Arc<dyn ObjectStore>), ServeError> {
    match &config.file.store {
        StoreSection::Local => {
            let local = LocalStore::open(&settings.data_dir.join("objects"))?;
            Ok((Some(local.clone()), Arc::new(local)))
        }
        StoreSection::S3(s3) => {
            let remote = crate::store::s3::S3Store::connect(s3, spool_dir.to_path_buf()).await;
            tracing::info!(
                store = ?remote,
                "objects live in S3; the built-in S3 endpoint is not started (s3.listen and \
                 --s3-listen are ignored)"
            );
            Ok((None, Arc::new(remote)))
        }
    }
}

/// The built-in S3 endpoint over the local store.
async fn serve_s3(
    settings: &Settings,
    config: &Config,
    local: &LocalStore,
    events: Arc<crate::http::events::EventsState>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ServeError> {
    let bind = |source| ServeError::Bind {
        addr: settings.s3_listen,
        source,
    };
    let s3 = tokio::net::TcpListener::bind(settings.s3_listen)
        .await
        .map_err(bind)?;
    let addr = s3.local_addr().map_err(bind)?;
    let limits = crate::s3_endpoint::EndpointLimits {
        body_timeout: config.file.s3.body_timeout,
    };
    let endpoint = crate::s3_endpoint::Endpoint::new(local.clone(), events, limits);
    let service = endpoint.service(&settings.s3_keys.0, &settings.s3_keys.1);
    let task = tokio::spawn(http::serve(s3, service, settings.http_limits, stopped));
    Ok((addr, task))
}

/// Removes multipart uploads older than `expiry`, checking a few times per expiry period.
fn spawn_upload_expiry(store: crate::store::LocalStore, expiry: Duration) {
    let every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    tokio::spawn(async move {
        loop {
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.expire_uploads(expiry)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    tracing::info!(uploads = n, ?expiry, "removed expired multipart uploads")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot expire multipart uploads"),
                Err(_) => return,
            }
            tokio::time::sleep(every).await;
        }
    });
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
            Trigger::S3(_) | Trigger::Poll(_) => None,
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

impl Running {
    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The local store that the S3 endpoint serves and functions read and write; none when
    /// objects live in a remote S3.
    pub fn store(&self) -> Option<&LocalStore> {
        self.store.as_ref()
    }

    /// Where the built-in S3 endpoint listens; none when objects live in a remote S3.
    pub fn s3_addr(&self) -> Option<SocketAddr> {
        self.s3_addr
    }

    /// Stop accepting, let admitted work finish and reply, then return.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.await.map_err(std::io::Error::other)?;
        }
        Ok(())
    }

    /// Serve until SIGTERM or Ctrl-C, then shut down gracefully, waiting at most the grace
    /// period (a client that never finishes its request cannot hold the process up).
    pub async fn until_signal(self) -> std::io::Result<()> {
        wait_for_signal().await;
        let grace = self.grace;
        tracing::info!(?grace, "shutting down: finishing admitted work");
        match tokio::time::timeout(grace, self.shutdown()).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    ?grace,
                    "shutdown grace period over; exiting with work unfinished"
                );
                Ok(())
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
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
