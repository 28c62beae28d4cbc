//! One function's spec, as written in `weir.yaml` (shape in DESIGN.md).

use std::time::Duration;

use serde::Deserialize;
use weir_gpu::DeviceRequest;

use super::units;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// The file this spec came from, when it is not the main config (`functions_dir`).
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    pub name: String,
    /// A kind from `weir_functions::kinds::KINDS`.
    pub kind: String,
    /// Kind-specific; checked against the kind's own schema after the whole file parses.
    #[serde(default)]
    pub params: serde_yaml::Value,
    #[serde(default, rename = "triggers")]
    pub trigger_entries: Vec<TriggerEntry>,
    /// Filled from `trigger_entries` once the file has parsed.
    #[serde(skip)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub output: Option<OutputSpec>,
    #[serde(default)]
    pub resources: Resources,
}

impl FunctionSpec {
    /// A stable hash of what decides this function's outputs (kind, params, output bucket and
    /// key template), written on every output as `weir-spec-hash`. Params are hashed as JSON
    /// with sorted keys, so reordering them in the YAML changes nothing.
    pub fn output_hash(&self) -> String {
        let params = serde_json::to_value(&self.params)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let (bucket, key) = self
            .output
            .as_ref()
            .map(|o| (o.bucket.as_str(), o.key.as_str()))
            .unwrap_or_default();
        crate::events::stable_id(&[self.kind.as_str(), &params, bucket, key])
    }
}

/// One entry of `triggers`: exactly one of its keys is set (`- s3: {...}` or `- http: {...}`).
/// A struct rather than an enum because YAML's single-key maps read more naturally than tags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerEntry {
    pub s3: Option<S3Trigger>,
    pub http: Option<HttpTrigger>,
    pub poll: Option<PollTrigger>,
    pub nats: Option<NatsTrigger>,
    pub cron: Option<CronTrigger>,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    /// Object-store events from notifications: the webhook and the built-in S3 endpoint
    /// (matched by bucket, event, prefix, suffix).
    S3(S3Trigger),
    /// An extra HTTP path that invokes the function, beside `/v1/functions/{name}/invoke`.
    Http(HttpTrigger),
    /// A bucket listed every `interval`, for stores that send no notifications.
    Poll(PollTrigger),
    /// Messages on a NATS subject: object references, or inline payloads answered on the
    /// message's reply subject.
    Nats(NatsTrigger),
    /// An event carrying `payload` at each slot of a schedule (`triggers/cron.rs`).
    Cron(CronTrigger),
}

impl TriggerEntry {
    pub fn into_trigger(self) -> Result<Trigger, String> {
        match (self.s3, self.http, self.poll, self.nats, self.cron) {
            (Some(s), None, None, None, None) => Ok(Trigger::S3(s)),
            (None, Some(h), None, None, None) => Ok(Trigger::Http(h)),
            (None, None, Some(p), None, None) => Ok(Trigger::Poll(p)),
            (None, None, None, Some(n), None) => Ok(Trigger::Nats(n)),
            (None, None, None, None, Some(c)) => Ok(Trigger::Cron(c)),
            _ => Err("expected exactly one of s3, http, poll, nats or cron".into()),
        }
    }
}

impl Trigger {
    /// The key it is written under (`- s3: ...`), for error messages.
    pub fn key(&self) -> &'static str {
        match self {
            Trigger::S3(_) => "s3",
            Trigger::Http(_) => "http",
            Trigger::Poll(_) => "poll",
            Trigger::Nats(_) => "nats",
            Trigger::Cron(_) => "cron",
        }
    }

    /// Whether its events go through the bus to the function's consumer (which writes outputs).
    pub fn feeds_bus(&self) -> bool {
        !matches!(self, Trigger::Http(_))
    }

    /// The objects it fires on, as an `s3` trigger would say it (bucket, prefix, suffix): what
    /// the bucket checks and the recursion guard look at.
    pub fn storage(&self) -> Option<S3Trigger> {
        match self {
            Trigger::S3(s) => Some(s.clone()),
            Trigger::Poll(p) => Some(p.as_s3()),
            Trigger::Http(_) | Trigger::Nats(_) | Trigger::Cron(_) => None,
        }
    }
}

/// `- nats: { subject: "media.in.>" }`: the subject (wildcards allowed) on the bus's NATS servers;
/// the nodes of one function share its messages (a queue group).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTrigger {
    pub subject: String,
}

/// `- cron: { schedule: "*/5 * * * *", timezone: UTC, payload: {...} }`: 5 fields (minute hour
/// day-of-month month day-of-week), or 6 with seconds first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    pub schedule: String,
    /// An IANA name; the schedule is read on its wall clock. Default UTC.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The input of each firing: a string as its text, anything else as JSON.
    #[serde(default)]
    pub payload: serde_yaml::Value,
}

fn default_timezone() -> String {
    "UTC".into()
}

/// `- poll: { bucket, prefix, suffix, interval: 30s }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollTrigger {
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default, deserialize_with = "units::one_or_many")]
    pub suffix: Vec<String>,
    /// From 1s; default 30s.
    #[serde(
        default = "default_poll_interval",
        deserialize_with = "units::duration"
    )]
    pub interval: Duration,
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(30)
}

impl PollTrigger {
    pub fn as_s3(&self) -> S3Trigger {
        S3Trigger {
            bucket: self.bucket.clone(),
            events: default_events(),
            prefix: self.prefix.clone(),
            suffix: self.suffix.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Trigger {
    pub bucket: String,
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default, deserialize_with = "units::one_or_many")]
    pub suffix: Vec<String>,
}

fn default_events() -> Vec<String> {
    vec!["s3:ObjectCreated:*".into()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub bucket: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    pub device: DeviceRequest,
    pub workers: Workers,
    pub batch: Batch,
    /// Invocations that may wait for a worker beyond those running; more are refused (429).
    pub queue: usize,
    #[serde(deserialize_with = "units::duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "units::bytes")]
    pub max_input: u64,
    pub retries: Retries,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            device: DeviceRequest::Auto,
            workers: Workers::default(),
            batch: Batch::default(),
            queue: 64,
            timeout: Duration::from_secs(30),
            max_input: 50_000_000,
            retries: Retries::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workers {
    pub min: usize,
    /// Batches running at once. Defaults to the number of cores.
    pub max: usize,
    #[serde(deserialize_with = "units::duration")]
    pub idle_after: Duration,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            min: 0,
            max: weir_gpu::cpu_threads(),
            idle_after: Duration::from_secs(90),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Batch {
    pub max_size: usize,
    #[serde(deserialize_with = "units::duration")]
    pub max_delay: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            max_size: 1,
            max_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retries {
    pub max: u32,
    #[serde(deserialize_with = "units::duration")]
    pub backoff: Duration,
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            max: 2,
            backoff: Duration::from_secs(1),
        }
    }
}
