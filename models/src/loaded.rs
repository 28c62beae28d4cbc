//! One model version, loaded and warm: its session, signature, labels, statistics and, when
//! configured, its dynamic batcher. Shared by every caller behind an `Arc`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use weir_gpu::Device;

use crate::backend::{ModelError, Session, Signature};
use crate::config::ModelConfig;
use crate::stats::Stats;

/// One model version, loaded and ready.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    pub config: Arc<ModelConfig>,
    pub signature: Signature,
    pub session: Arc<dyn Session>,
    pub backend: &'static str,
    pub device: Device,
    pub labels: Option<Arc<Vec<String>>>,
    pub stats: Arc<Stats>,
    /// The dynamic batcher, when the config asks for `dynamic_batching`.
    pub queue: Option<crate::queue::ModelQueue>,
    /// What the budget counts: how much its device's memory grew while it loaded and warmed up,
    /// never less than the file's size (`memory::Footprint`).
    pub bytes: u64,
    /// Milliseconds since the epoch of the last `get` (or the load).
    pub(crate) last_used: AtomicU64,
    /// Nanoseconds the last run without a batcher took (`u64::MAX` before the first).
    pub(crate) last_run_ns: AtomicU64,
}

/// A run at most this long may happen on the thread that asked for it (an async runtime thread
/// included): handing it to another thread and back would cost more than the run.
const INLINE_RUN: std::time::Duration = std::time::Duration::from_micros(50);

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Requests a model's dynamic batcher holds waiting; more are refused with 429.
const QUEUE_CAPACITY: usize = 1024;

/// What a loaded model is made of, once its session is up.
pub(crate) struct Parts<'a> {
    pub name: &'a str,
    pub version: u64,
    pub config: Arc<ModelConfig>,
    pub session: Arc<dyn Session>,
    pub backend: &'static str,
    pub device: Device,
    pub labels: Option<Arc<Vec<String>>>,
    pub bytes: u64,
}

impl LoadedModel {
    /// Check the labels against the model's classes and start its batcher, if configured.
    pub(crate) fn assemble(p: Parts<'_>) -> Result<LoadedModel, ModelError> {
        let signature = p.session.signature().clone();
        if let (Some(l), Some(out)) = (&p.labels, signature.outputs.first())
            && let Some(&classes) = out.dims.last()
            && classes > 0
            && l.len() as i64 != classes
        {
            return Err(ModelError::Load(format!(
                "labels: {} lines, but output '{}' has {classes} classes",
                l.len(),
                out.name
            )));
        }
        let stats = Arc::new(Stats::default());
        let queue = p.config.dynamic_batching.as_ref().map(|b| {
            let policy = crate::queue::Policy::new(
                p.config.max_batch_size.max(1),
                &b.preferred_batch_size,
                b.max_queue_delay,
                QUEUE_CAPACITY,
            );
            let count = p.config.instance_group.count;
            crate::queue::ModelQueue::start(p.name, p.session.clone(), stats.clone(), policy, count)
        });
        Ok(LoadedModel {
            name: p.name.to_string(),
            version: p.version,
            config: p.config,
            signature,
            session: p.session,
            backend: p.backend,
            device: p.device,
            labels: p.labels,
            stats,
            queue,
            bytes: p.bytes,
            last_used: AtomicU64::new(now_ms()),
            last_run_ns: AtomicU64::new(u64::MAX),
        })
    }

    /// The statistics Triton's `/v2/models/{m}/stats` gives, with the memory it is counted as taking.
    pub fn statistics(&self) -> crate::stats::ModelStats {
        let mut s = self.stats.snapshot(&self.name, self.version);
        let (kind, id) = match self.device {
            Device::Cpu => ("CPU", 0),
            Device::Cuda(n) => ("GPU", n),
        };
        s.memory_usage.push(crate::stats::MemoryUsage {
            kind,
            id,
            byte_size: self.bytes,
        });
        s
    }

    /// Whether a request may run on the caller's thread: the model has no batcher to join and
    /// its last run took under 50 µs (an identity or a tiny tabular model, say).
    pub fn runs_inline(&self) -> bool {
        self.queue.is_none()
            && self.last_run_ns.load(std::sync::atomic::Ordering::Relaxed)
                <= INLINE_RUN.as_nanos() as u64
    }

    /// Run one request's inputs (in the signature's order), through the dynamic batcher when the
    /// model has one. Blocks: call it off the async runtime. A function's input calling it gives
    /// its core to the model meanwhile (`Cores::lend`).
    pub fn run_blocking(
        &self,
        inputs: Vec<crate::tensor::Tensor>,
        source: &'static str,
    ) -> Result<Vec<crate::tensor::Tensor>, ModelError> {
        // Read once: a run too short to wait for cores runs on the core the caller holds.
        let inline = self.runs_inline();
        if inline {
            return self.run_waiting(inputs, source, inline);
        }
        crate::cores::Cores::machine().lend(|| self.run_waiting(inputs, source, inline))
    }

    fn run_waiting(
        &self,
        inputs: Vec<crate::tensor::Tensor>,
        source: &'static str,
        inline: bool,
    ) -> Result<Vec<crate::tensor::Tensor>, ModelError> {
        if let Some(q) = &self.queue {
            return q
                .submit(inputs, source)?
                .blocking_recv()
                .map_err(|_| ModelError::Run("the model's instance stopped".into()))?;
        }
        let rows = inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(1);
        // A run too short to matter (one that may run on an async runtime thread) never waits
        // for cores; any other waits its turn, and that wait is its queue time.
        let arrived = Instant::now();
        let held = (!inline).then(|| crate::cores::Cores::machine().take(self.session.cores()));
        let t = Instant::now();
        self.stats.queued(t - arrived);
        let out = self.session.run(&inputs);
        let took = t.elapsed();
        drop(held);
        self.last_run_ns
            .store(took.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
        self.stats.execution(crate::stats::ExecutionTimes {
            rows,
            input: std::time::Duration::ZERO,
            infer: took,
            output: std::time::Duration::ZERO,
        });
        out
    }
}
