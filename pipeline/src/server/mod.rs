//! `weir serve`: settings resolved, pools started, the HTTP API bound, graceful shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_workers::cpu_pool;

use crate::config::{Config, StoreSection};
use crate::http;
use crate::store::{LocalStore, ObjectStore};

mod idle;
mod steps;

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
    #[error("cannot start the cron triggers: {0}")]
    Crons(#[from] crate::triggers::cron::CronStateError),
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
    /// The HTTP API and the S3 endpoint.
    front: Vec<JoinHandle<()>>,
    /// The bucket pollers and the cron triggers.
    pollers: Vec<JoinHandle<()>>,
    consumers: Vec<JoinHandle<()>>,
    bus: Arc<dyn crate::bus::Bus>,
    jobs: Arc<crate::jobs::Jobs>,
    /// Told to stop their warm instances once admitted work is done.
    functions: Vec<Arc<dyn weir_functions::Function>>,
}

/// Start everything in order: the pools, the store, the bus and its consumers, the pollers, the
/// HTTP API and (with the local store) the built-in S3 endpoint. `Running` keeps every task.
pub async fn start(settings: &Settings, config: &Config) -> Result<Running, ServeError> {
    if !settings.http_listen.ip().is_loopback() && settings.token.is_none() && !settings.insecure {
        return Err(ServeError::Insecure(settings.http_listen));
    }
    let spool_dir = settings.data_dir.join("tmp");
    for dir in [&settings.data_dir, &spool_dir] {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    let cpu = cpu_pool(weir_gpu::cpu_threads());
    let pools = steps::Pools::start(config, &cpu);
    let (local, store) = open_store(settings, config, &spool_dir).await?;
    let (stop, stopped) = watch::channel(false);
    let dispatch = crate::dispatch::start(
        &settings.data_dir,
        &store,
        &config.functions,
        &pools.by_name,
        &config.file,
        &stopped,
    )
    .await?;
    let mut pollers = crate::triggers::start_pollers(
        &config.functions,
        &store,
        &dispatch.events,
        &settings.data_dir,
        &stopped,
    )?;
    let crons = crate::triggers::start_crons(
        &config.functions,
        &dispatch.events,
        &settings.data_dir,
        &stopped,
    )?;
    pollers.extend(crons);
    let subscriptions = crate::triggers::nats::start(
        &config.functions,
        &pools.by_name,
        &dispatch.events,
        dispatch.nats.as_ref(),
        &stopped,
    );
    let wired = steps::Wired {
        dispatch: &dispatch,
        store: &store,
        spool_dir,
    };
    idle::spawn(config, &pools.by_name, stopped.clone());
    let http = steps::serve_http(settings, config, pools, &cpu, wired, &stopped).await?;
    let mut front = vec![http.1];
    front.extend(subscriptions);
    let s3_addr = match &local {
        Some(local) => {
            spawn_upload_expiry(local.clone(), config.file.s3.multipart_expiry);
            let events = dispatch.events.clone();
            let (addr, task) =
                serve_s3(settings, config, local, events, steps::when(stopped)).await?;
            front.push(task);
            Some(addr)
        }
        None => None,
    };
    start_functions(settings, config, s3_addr);
    let grace = config.drain();
    Ok(Running {
        addr: http.0,
        s3_addr,
        store: local,
        grace,
        stop,
        front,
        pollers,
        consumers: dispatch.consumers,
        bus: dispatch.bus,
        jobs: dispatch.jobs,
        functions: config
            .functions
            .iter()
            .map(|f| f.function.clone())
            .collect(),
    })
}

/// Tell each function the server is up, and how code it runs reaches the object store: the
/// built-in S3 endpoint with its keys, or the S3 the config names (its own keys, if written).
fn start_functions(settings: &Settings, config: &Config, s3_addr: Option<SocketAddr>) {
    let mut env = std::collections::BTreeMap::new();
    let mut set = |k: &str, v: &str| env.insert(k.to_string(), v.to_string());
    match (&config.file.store, s3_addr) {
        (StoreSection::S3(s3), _) => {
            if let Some(e) = &s3.endpoint {
                set("AWS_ENDPOINT_URL_S3", e);
            }
            if let Some(r) = &s3.region {
                set("AWS_REGION", r);
            }
            if let (Some(a), Some(k)) = (&s3.access_key, &s3.secret_key) {
                set("AWS_ACCESS_KEY_ID", a);
                set("AWS_SECRET_ACCESS_KEY", k);
            }
        }
        (StoreSection::Local, Some(addr)) => {
            set("AWS_ENDPOINT_URL_S3", &format!("http://{addr}"));
            set("AWS_ACCESS_KEY_ID", &settings.s3_keys.0);
            set("AWS_SECRET_ACCESS_KEY", &settings.s3_keys.1);
        }
        (StoreSection::Local, None) => {}
    }
    let started = weir_functions::Started {
        store_env: env,
        scratch: settings.data_dir.join("process"),
    };
    for f in &config.functions {
        f.function.start(&started);
    }
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
    events: Arc<crate::triggers::Ingress>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<()>), ServeError> {
    let (s3, addr) = steps::listen(settings.s3_listen).await?;
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

    /// Stop accepting, let admitted work finish and reply, record every consumer's outcomes on
    /// the bus, then close the bus.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        for t in self
            .front
            .into_iter()
            .chain(self.pollers)
            .chain(self.consumers)
        {
            t.await.map_err(std::io::Error::other)?;
        }
        for f in &self.functions {
            f.stop();
        }
        self.jobs.close();
        self.bus.close().await;
        Ok(())
    }

    /// Serve until SIGTERM or Ctrl-C, then shut down gracefully, waiting at most the grace
    /// period (a client that never finishes its request cannot hold the process up).
    pub async fn until_signal(self) -> std::io::Result<()> {
        wait_for_signal().await;
        let grace = self.grace;
        tracing::info!(?grace, "shutting down: finishing admitted work");
        let functions = self.functions.clone();
        match tokio::time::timeout(grace, self.shutdown()).await {
            Ok(result) => result,
            Err(_) => {
                for f in &functions {
                    f.stop();
                }
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
