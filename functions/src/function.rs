//! The seam every function kind implements.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use weir_gpu::Device;
use weir_models::cores::Cores;

use crate::FnError;
use crate::memory::DecodeMemory;
use crate::origin::{Origin, Reply};
use crate::source::{Source, SourceReader};
use crate::thumbnail::Allowance;

/// One input of a batch.
#[derive(Debug, Clone)]
pub struct Input {
    /// The input's bytes; empty when it comes as a `source` instead.
    pub bytes: Bytes,
    /// What the sender said it is; functions sniff the bytes and treat this as a hint only.
    pub content_type: Option<String>,
    /// An input read as it is needed rather than held whole (a video in the object store).
    /// Given only to functions whose `Limits::streams_input` is set.
    pub source: Option<Arc<dyn Source>>,
    /// What caused the input; set for functions that run users' code (`Function::external`).
    pub origin: Option<Arc<Origin>>,
    /// Where artifacts may go as soon as they are made (`Early::offer`), ahead of the output;
    /// set where they are written to the store, not where they are the HTTP reply.
    pub early: Option<Early>,
}

impl Input {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Input {
            bytes: bytes.into(),
            content_type: None,
            source: None,
            origin: None,
            early: None,
        }
    }

    /// An input that is the event alone: code that reads the object itself gets no bytes.
    pub fn event(origin: Origin) -> Self {
        Input {
            origin: Some(Arc::new(origin)),
            ..Input::new(Bytes::new())
        }
    }

    pub fn streamed(source: Arc<dyn Source>) -> Self {
        Input {
            source: Some(source),
            ..Input::new(Bytes::new())
        }
    }

    /// The input as a reader that can seek, whichever way it came.
    pub fn reader(&self) -> SourceReader {
        let source: Arc<dyn Source> = match &self.source {
            Some(s) => s.clone(),
            None => Arc::new(self.bytes.clone()),
        };
        SourceReader::new(source)
    }
}

/// The sending side of a function's early artifacts: a bounded channel, and a full or closed
/// one leaves the artifact in the output, so nothing is lost and nothing waits.
#[derive(Debug, Clone)]
pub struct Early(tokio::sync::mpsc::Sender<Artifact>);

impl Early {
    /// A sender and the receiver its artifacts reach, holding at most `room`.
    pub fn channel(room: usize) -> (Early, tokio::sync::mpsc::Receiver<Artifact>) {
        let (tx, rx) = tokio::sync::mpsc::channel(room.max(1));
        (Early(tx), rx)
    }

    /// Hand `artifact` on now, so it is written while the rest is made: `None` when it was
    /// taken, or the artifact back (no sender, or it is full or closed) to be returned in the
    /// output as usual.
    pub fn offer(to: Option<&Early>, artifact: Artifact) -> Option<Artifact> {
        match to {
            Some(early) => early.0.try_send(artifact).err().map(|e| e.into_inner()),
            None => Some(artifact),
        }
    }
}

/// A file a function produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// Stable name within one output, e.g. `256.jpg`: the same input gives the same names.
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
    /// Values for output key templates (`{size}` and the like).
    pub vars: BTreeMap<String, String>,
    /// Where the artifact's key comes from.
    pub placement: Placement,
}

/// How an artifact's output key is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placement {
    /// The output's key template, rendered with the artifact's `vars`.
    #[default]
    Template,
    /// Beside the templated keys: the template's folder (up to its last `/`) plus the
    /// artifact's name, e.g. a video's `manifest.json` next to its frames.
    Beside,
}

/// Everything one input produced: its artifacts and a JSON summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    pub artifacts: Vec<Artifact>,
    pub summary: serde_json::Value,
    /// The HTTP answer the function chose (users' code behind an HTTP trigger, a kind whose
    /// answer is one JSON document); `None` for Weir's own reply forms.
    pub reply: Option<Reply>,
}

impl Output {
    pub fn new(artifacts: Vec<Artifact>, summary: serde_json::Value) -> Self {
        Output {
            artifacts,
            summary,
            reply: None,
        }
    }

    /// An answer that is one JSON document (`classify`, `infer`): stored as the artifact
    /// `name`, and over HTTP the reply itself rather than base64 inside the envelope (which
    /// `?return=all` still gives).
    pub fn json_document(name: &str, bytes: Vec<u8>, summary: serde_json::Value) -> Self {
        let content_type = "application/json";
        Output {
            reply: Some(Reply {
                status: 200,
                headers: vec![("content-type".into(), content_type.into())],
                body: bytes.clone(),
            }),
            artifacts: vec![Artifact {
                name: name.into(),
                content_type: content_type.into(),
                bytes,
                vars: Default::default(),
                placement: Default::default(),
            }],
            summary,
        }
    }
}

/// What a function kind can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest batch the function accepts in one call.
    pub max_batch: usize,
    /// Whether the function has a GPU path (placement refuses `cuda` otherwise).
    pub gpu_capable: bool,
    /// Whether the function reads `Input::source` (objects are then opened, not read whole).
    pub streams_input: bool,
    /// The most one input may reserve from the decode-memory budget (0: it reserves none).
    pub max_decode_bytes: u64,
}

/// Where and until when a batch runs.
#[derive(Debug, Clone)]
pub struct ExecCtx {
    pub device: Device,
    /// One deadline per input, in batch order.
    pub deadlines: Vec<Instant>,
    /// The process's decode-memory budget, shared by every function.
    pub memory: Arc<DecodeMemory>,
    /// The cores every function and model share: an input holds one while it runs, and spreads
    /// its pieces over the idle ones (`crate::spread`).
    pub cores: &'static Cores,
}

impl ExecCtx {
    /// A context with no practical deadline, for direct calls (benchmarks, tests).
    pub fn unbounded(n: usize) -> Self {
        ExecCtx {
            device: Device::Cpu,
            deadlines: vec![far(); n],
            memory: DecodeMemory::unlimited(),
            cores: Cores::machine(),
        }
    }

    /// What decoding input `i` may take: `max_pixels`, and memory from the budget until the
    /// input's deadline.
    pub fn allowance(&self, i: usize, max_pixels: u64) -> Allowance {
        Allowance {
            max_pixels,
            memory: self.memory.clone(),
            deadline: self.deadline(i),
            rgb_copy: false,
            cores: Some(self.cores),
        }
    }

    /// Input `i`'s deadline (none in practice when the context has fewer deadlines).
    pub fn deadline(&self, i: usize) -> Instant {
        self.deadlines.get(i).copied().unwrap_or_else(far)
    }

    /// `one` for every input of the batch on the current rayon pool, each on the core of the
    /// thread that runs it and after its deadline check: one result per input, in order.
    pub fn par_each(
        &self,
        batch: &[Input],
        one: impl Fn(&Input, usize) -> Result<Output, FnError> + Sync + Send,
    ) -> Vec<Result<Output, FnError>> {
        use rayon::prelude::*;
        batch
            .par_iter()
            .enumerate()
            .map(|(i, input)| {
                self.cores
                    .on_core(|| self.check(i).and_then(|_| one(input, i)))
            })
            .collect()
    }

    /// Fails once input `i` is past its deadline, so long work stops between stages.
    pub fn check(&self, i: usize) -> Result<(), FnError> {
        self.deadlines.get(i).map_or(Ok(()), |d| before(*d))
    }
}

/// Fails once `deadline` has passed; for work that carries its deadline to other threads.
pub fn before(deadline: Instant) -> Result<(), FnError> {
    if Instant::now() >= deadline {
        return Err(FnError::timeout(
            "the invocation ran past its deadline and was stopped",
        ));
    }
    Ok(())
}

pub(crate) fn far() -> Instant {
    Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
}

/// A function kind, ready to run (its params already validated).
pub trait Function: Send + Sync + 'static {
    /// The kind's name as written in a spec (`thumbnail`).
    fn kind(&self) -> &'static str;
    fn limits(&self) -> Limits;
    /// Run a batch. Must return exactly one result per input, in order.
    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>>;

    /// Whether the function runs in processes of its own (users' code): its batches then wait
    /// on threads of their own rather than holding CPU cores, and each input is the event that
    /// caused it (`Input::origin`), not the object's bytes, which the code reads itself.
    fn external(&self) -> bool {
        false
    }

    /// Called once the server is up (its endpoints bound), before any event is routed: the
    /// moment to start warm instances.
    fn start(&self, _started: &Started) {}

    /// Called at shutdown once admitted work is done: the moment to stop warm instances.
    fn stop(&self) {}

    /// Instances of its own that it keeps (worker processes, a loaded model), for
    /// `/v1/functions`: `None` for kinds that hold nothing between calls.
    fn instances(&self) -> Option<Instances> {
        None
    }

    /// The function has had no work for `after` (`resources.workers.idle_after`, with
    /// `workers.min` at zero): give back what it holds (its model unloaded), to take again on
    /// the next call. Whether it gave something back. Kinds that tend their own instances
    /// (`process`) ignore it.
    fn idle(&self, _after: std::time::Duration) -> bool {
        false
    }
}

/// A function's own instances now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Instances {
    /// Started and waiting for work.
    pub idle: usize,
    /// Every instance: idle, busy or starting.
    pub all: usize,
}

/// What a started server tells its functions.
#[derive(Debug, Clone, Default)]
pub struct Started {
    /// Variables that code run by a function needs to reach the object store (endpoint,
    /// credentials, region), as AWS SDKs read them.
    pub store_env: BTreeMap<String, String>,
    /// A folder of the server's data directory where functions may keep scratch files.
    pub scratch: std::path::PathBuf,
}
