//! `weir.yaml`: parsed strictly (unknown keys are errors), then checked as a whole. Every error
//! names the file, the field and what was expected.

mod check;
mod spec;
mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use weir_functions::Function;
use weir_gpu::{Device, Inventory};
use weir_models::{Backends, Repository};

pub use spec::{
    Batch, FunctionSpec, HttpTrigger, NatsTrigger, OutputSpec, PollTrigger, Resources, Retries,
    S3Trigger, Trigger, TriggerEntry, Workers,
};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub s3: S3Section,
    /// Where objects live: Weir's local store (the default) or any S3.
    #[serde(default)]
    pub store: StoreSection,
    /// Where accepted events wait: the embedded durable bus (the default) or NATS JetStream.
    #[serde(default)]
    pub bus: BusSection,
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    /// A folder of `*.yaml` files, one function spec each, added to `functions`.
    pub functions_dir: Option<PathBuf>,
    /// The model repository (Triton's layout), relative to this file.
    pub models: Option<PathBuf>,
    /// Memory for loaded models (as measured while each loaded) before the least recently used
    /// idle ones on that device are unloaded: `2GB` on every device, or by device, `{ cpu: 8GB,
    /// cuda: 20GB, "cuda:1": 40GB }`; no limit when left out.
    #[serde(default, deserialize_with = "units::budget")]
    pub model_memory_budget: weir_models::budget::Budget,
    /// Memory that decoded pictures may hold at once, over every function: a decode reserves
    /// its share before it allocates and waits (until its deadline, then 429 / a retry) while
    /// the budget is spent. Default: a quarter of the machine's memory (or its cgroup's limit).
    #[serde(default, deserialize_with = "units::optional_bytes")]
    pub decode_memory_budget: Option<u64>,
    /// Asynchronous invokes and their results.
    #[serde(default)]
    pub invocations: InvocationsSection,
}

/// Asynchronous invokes (`Prefer: respond-async`): each body rides on the bus, and each result
/// is kept in `<data>/invocations.redb` for `GET /v1/invocations/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvocationsSection {
    /// The largest body one takes (it travels on the bus, base64 in the event); larger get 413.
    #[serde(deserialize_with = "units::bytes")]
    pub max_body: u64,
    /// How long a finished one's result is kept.
    #[serde(deserialize_with = "units::duration")]
    pub keep: std::time::Duration,
    /// Results kept at most; beyond it, the oldest finished go first.
    pub max_results: u64,
    /// Result bytes kept at most; beyond it, the oldest finished go first.
    #[serde(deserialize_with = "units::bytes")]
    pub max_bytes: u64,
    /// Accepted and not yet finished, per function; more get 429.
    pub max_queued: u64,
}

impl Default for InvocationsSection {
    fn default() -> Self {
        InvocationsSection {
            // Lambda's asynchronous limit was 256 KB for years; base64 keeps it under NATS's
            // default 1 MB message.
            max_body: 256 << 10,
            keep: std::time::Duration::from_secs(3600),
            max_results: 10_000,
            max_bytes: 256 << 20,
            max_queued: 1_000,
        }
    }
}

impl FileConfig {
    /// The decode-memory budget in bytes: as written, or sized from the machine.
    pub fn decode_memory_budget(&self) -> u64 {
        self.decode_memory_budget.unwrap_or_else(|| {
            weir_functions::memory::default_budget(weir_gpu::host_memory().unwrap_or(4 << 30))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    pub inference_token: Option<String>,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers.
    #[serde(deserialize_with = "units::duration")]
    pub header_timeout: std::time::Duration,
    /// Open Inference requests admitted at once (reading, waiting or running); more get 429.
    pub max_inference_requests: usize,
    /// The largest inference request body, after any decompression.
    #[serde(deserialize_with = "units::bytes")]
    pub max_inference_body: u64,
    /// How long a request body may take to arrive (webhook, invoke, Open Inference); then 408
    /// (504 for an invocation, whose function timeout also bounds it).
    #[serde(deserialize_with = "units::duration")]
    pub body_timeout: std::time::Duration,
    /// The largest S3 notification body on the webhook; larger ones get 413.
    #[serde(deserialize_with = "units::bytes")]
    pub max_event_body: u64,
}

impl Default for HttpSection {
    fn default() -> Self {
        let limits = crate::http::Limits::default();
        HttpSection {
            listen: None,
            token: None,
            inference_token: None,
            max_connections: limits.max_connections,
            header_timeout: limits.header_timeout,
            max_inference_requests: 256,
            max_inference_body: 64 << 20,
            body_timeout: std::time::Duration::from_secs(30),
            max_event_body: 8 << 20,
        }
    }
}

/// The built-in S3 endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Section {
    pub listen: Option<SocketAddr>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// How long one request's body (a PUT, a part) may take to arrive; then 400 RequestTimeout.
    #[serde(deserialize_with = "units::duration")]
    pub body_timeout: std::time::Duration,
    /// Multipart uploads neither completed nor aborted this long after they began are removed
    /// with their parts.
    #[serde(deserialize_with = "units::duration")]
    pub multipart_expiry: std::time::Duration,
}

impl Default for S3Section {
    fn default() -> Self {
        S3Section {
            listen: None,
            access_key: None,
            secret_key: None,
            body_timeout: std::time::Duration::from_secs(300),
            multipart_expiry: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// `store: { kind: local }` (objects under the data directory, served by the built-in S3
/// endpoint) or `store: { kind: s3, endpoint, region, path_style, access_key, secret_key }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreSection {
    #[default]
    Local,
    S3(crate::store::s3::S3Settings),
}

/// `bus: { kind: embedded }` (`<data>/bus.redb`) or `bus: { kind: nats, url, stream, replicas,
/// credentials, token, ack_wait }`: several Weir nodes on one stream share the work.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BusSection {
    #[default]
    Embedded,
    Nats(NatsSection),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSection {
    /// One server, or a cluster's servers separated by commas.
    pub url: String,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// A `.creds` file; relative to the working directory.
    pub credentials: Option<PathBuf>,
    pub token: Option<String>,
    /// 1s to 30s: how soon a dead node's deliveries go to another.
    #[serde(default = "default_ack_wait", deserialize_with = "units::duration")]
    pub ack_wait: std::time::Duration,
}

fn default_stream() -> String {
    "weir".into()
}

fn default_replicas() -> usize {
    1
}

fn default_ack_wait() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

impl NatsSection {
    pub fn settings(&self) -> crate::bus::JetStreamSettings {
        crate::bus::JetStreamSettings {
            url: self.url.clone(),
            stream: self.stream.clone(),
            replicas: self.replicas,
            ack_wait: self.ack_wait,
            credentials: self.credentials.clone(),
            token: self.token.clone(),
            start_wait: std::time::Duration::from_secs(30),
        }
    }
}

/// A config mistake: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// A checked function, ready for a pool.
#[derive(Clone)]
pub struct LoadedFunction {
    pub spec: FunctionSpec,
    /// The spec's kind, from the registry.
    pub kind: &'static weir_functions::kinds::Kind,
    pub function: Arc<dyn Function>,
    pub device: Device,
}

/// The whole file, checked.
pub struct Config {
    pub file: FileConfig,
    pub functions: Vec<LoadedFunction>,
    /// The model repository, every model loaded (or reported with its reason).
    pub models: Option<Arc<Repository>>,
}

impl Config {
    /// How long `weir serve` may take to finish what it admitted after SIGTERM: the longest
    /// function `timeout` plus 5 s (a pod's termination grace period must cover it).
    pub fn drain(&self) -> std::time::Duration {
        self.functions
            .iter()
            .map(|f| f.spec.resources.timeout)
            .max()
            .unwrap_or_default()
            + std::time::Duration::from_secs(5)
    }

    pub fn load(path: &Path, inventory: &Inventory) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path, "(file)", format!("cannot read the config file: {e}")))?;
        Self::parse(path, &text, inventory)
    }

    /// Parse `text` as if read from `path` (tests use this with a made-up path).
    pub fn parse(path: &Path, text: &str, inventory: &Inventory) -> Result<Config, ConfigError> {
        let mut file: FileConfig = from_yaml(path, text, "")?;
        if let Some(dir) = &file.functions_dir {
            let dir = path.parent().unwrap_or(Path::new(".")).join(dir);
            file.functions.extend(read_functions_dir(&dir)?);
        }
        for (i, f) in file.functions.iter_mut().enumerate() {
            let source = f.source.clone().unwrap_or_else(|| path.to_path_buf());
            let entries = std::mem::take(&mut f.trigger_entries);
            f.triggers = entries
                .into_iter()
                .enumerate()
                .map(|(t, e)| {
                    e.into_trigger()
                        .map_err(|m| err(&source, &format!("functions[{i}].triggers[{t}]"), m))
                })
                .collect::<Result<_, _>>()?;
        }
        check::tokens(path, &file)?;
        check::http(path, &file)?;
        check::invocations(path, &file)?;
        check::store(path, &file)?;
        check::bus(path, &file)?;
        let models = match &file.models {
            Some(dir) => {
                let dir = path.parent().unwrap_or(Path::new(".")).join(dir);
                let repo = Repository::open_with_budget(
                    &dir,
                    Backends::available(),
                    inventory.clone(),
                    file.model_memory_budget.clone(),
                )
                .map_err(|e| err(path, "models", e.to_string()))?;
                Some(Arc::new(repo))
            }
            None => None,
        };
        let functions = check::functions(path, &file, inventory, models.as_ref())?;
        Ok(Config {
            file,
            functions,
            models,
        })
    }
}

pub(crate) fn err(path: &Path, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: path.display().to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// Deserialize with the path of the failing field; `prefix` places a nested document.
fn from_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    prefix: &str,
) -> Result<T, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| path_error(path, prefix, e))
}

/// A serde error at a field path, under `prefix`, as a `ConfigError`.
pub(crate) fn path_error(
    path: &Path,
    prefix: &str,
    e: serde_path_to_error::Error<serde_yaml::Error>,
) -> ConfigError {
    let inner = e.path().to_string();
    let inner = if inner == "." { String::new() } else { inner };
    let field = join(prefix, &inner);
    let message = strip_path(e.into_inner().to_string(), &inner);
    err(
        path,
        if field.is_empty() {
            "(top level)"
        } else {
            &field
        },
        message,
    )
}

/// serde_yaml repeats the path at the start of its message; the field is reported on its own.
fn strip_path(message: String, path: &str) -> String {
    message
        .strip_prefix(&format!("{path}: "))
        .map(str::to_string)
        .unwrap_or(message)
}

fn join(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

fn read_functions_dir(dir: &Path) -> Result<Vec<FunctionSpec>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err(dir, "functions_dir", format!("cannot read the folder: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| err(p, "(file)", format!("cannot read: {e}")))?;
            let mut spec: FunctionSpec = from_yaml(p, &text, "")?;
            spec.source = Some(p.clone());
            Ok(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests;
