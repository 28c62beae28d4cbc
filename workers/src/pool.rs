//! A pool per function: admission (a semaphore decided before the body is read), a batcher task,
//! and batches run on the shared rayon CPU pool.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use metrics::{counter, gauge, histogram};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::time::Instant;
use weir_functions::memory::DecodeMemory;
use weir_functions::{ErrorKind, ExecCtx, FnError, Function, Input, Output};

use crate::metric_names as m;
use crate::{PoolConfig, batcher};

/// The CPU pool every function shares, one thread per core, so concurrent batches never
/// oversubscribe the machine and never block the async runtime.
pub fn cpu_pool(threads: usize) -> Arc<rayon::ThreadPool> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("weir-cpu-{i}"))
        .build()
        .unwrap_or_else(|e| panic!("cannot start the CPU thread pool: {e}"));
    Arc::new(pool)
}

struct Job {
    input: Input,
    deadline: Deadline,
    admitted: Instant,
    reply: oneshot::Sender<Result<Output, FnError>>,
    /// Held until the work ends, even if the caller gave up: admission counts real work.
    _ticket: Ticket,
}

/// When an invocation's time is up: fixed at admission (a caller waiting on HTTP, whose wait
/// counts), or `timeout` after its batch starts (a queue consumer: waiting is bounded by
/// admission, and never spends the function's timeout). The sender tells the caller when the
/// clock started.
enum Deadline {
    At(Instant),
    FromStart(std::time::Duration, Option<oneshot::Sender<Instant>>),
}

impl Job {
    fn expired(&self, now: Instant) -> bool {
        matches!(self.deadline, Deadline::At(d) if d <= now)
    }

    /// Starts the clock (once) and gives the deadline.
    fn start(&mut self, now: Instant) -> Instant {
        match &mut self.deadline {
            Deadline::At(d) => *d,
            Deadline::FromStart(t, started) => {
                let d = now + *t;
                if let Some(tx) = started.take() {
                    let _ = tx.send(d);
                }
                self.deadline = Deadline::At(d);
                d
            }
        }
    }
}

/// Which clock an admission's timeout runs on (see `Deadline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clock {
    Admission,
    Run,
}

/// One admitted invocation's hold on the pool's capacity.
struct Ticket {
    permit: Option<OwnedSemaphorePermit>,
    function: Arc<str>,
    /// Rung once the place is given back, for work that waits for a spare worker.
    freed: Arc<Notify>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        gauge!(m::IN_FLIGHT, "function" => self.function.to_string()).decrement(1.0);
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

struct Shared {
    cfg: PoolConfig,
    name: Arc<str>,
    admission: Arc<Semaphore>,
    /// Rung whenever an admitted invocation ends (`Pool::admit_spare` waits on it).
    freed: Arc<Notify>,
    tx: mpsc::Sender<Job>,
    /// The most invocations ever admitted at once: evidence that admission bounds memory.
    peak: std::sync::atomic::AtomicUsize,
    /// The function reads inputs as streams (`Limits::streams_input`).
    streams_input: bool,
    function: Arc<dyn Function>,
}

/// A function's pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// What the pool holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub capacity: usize,
    /// Admitted and not yet finished: queued, running, or running after its caller timed out.
    pub in_flight: usize,
    /// The highest `in_flight` seen since the pool started.
    pub peak_in_flight: usize,
}

impl Pool {
    /// Starts the pool's batcher on the current tokio runtime.
    pub fn new(function: Arc<dyn Function>, cfg: PoolConfig, cpu: Arc<rayon::ThreadPool>) -> Pool {
        let mut cfg = cfg;
        cfg.max_batch = cfg.max_batch.clamp(1, function.limits().max_batch.max(1));
        cfg.workers = cfg.workers.max(1);
        let (tx, rx) = mpsc::channel(cfg.capacity());
        let name: Arc<str> = Arc::from(cfg.name.as_str());
        let shared = Arc::new(Shared {
            admission: Arc::new(Semaphore::new(cfg.capacity())),
            freed: Arc::default(),
            name: name.clone(),
            tx,
            peak: Default::default(),
            streams_input: function.limits().streams_input,
            function: function.clone(),
            cfg,
        });
        let workers = Arc::new(Semaphore::new(shared.cfg.workers));
        let (device, memory) = (shared.cfg.device, shared.cfg.decode_memory.clone());
        tokio::spawn(batcher::run(
            rx,
            shared.cfg.max_batch,
            shared.cfg.max_delay,
            workers,
            move |batch, slot| dispatch(&cpu, &function, &name, (device, &memory), batch, slot),
        ));
        Pool { shared }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.shared.cfg
    }

    /// Whether the function reads its inputs as streams: callers then hand it a file, not bytes.
    pub fn streams_input(&self) -> bool {
        self.shared.streams_input
    }

    /// Whether the function runs users' code, which is handed the event (`Input::origin`)
    /// rather than the object's bytes.
    pub fn external(&self) -> bool {
        self.shared.function.external()
    }

    /// The function's own instances (worker processes), when it keeps any.
    pub fn instances(&self) -> Option<weir_functions::Instances> {
        self.shared.function.instances()
    }

    fn in_flight(&self) -> usize {
        self.shared.cfg.capacity() - self.shared.admission.available_permits()
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            capacity: self.shared.cfg.capacity(),
            in_flight: self.in_flight(),
            peak_in_flight: self.shared.peak.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// An admission holding `permit`, counted in the in-flight gauge and the peak.
    fn admitted(&self, permit: OwnedSemaphorePermit, clock: Clock) -> Admission {
        let name = &self.shared.name;
        self.shared
            .peak
            .fetch_max(self.in_flight(), std::sync::atomic::Ordering::Relaxed);
        gauge!(m::IN_FLIGHT, "function" => name.to_string()).increment(1.0);
        Admission {
            shared: self.shared.clone(),
            ticket: Ticket {
                permit: Some(permit),
                function: name.clone(),
                freed: self.shared.freed.clone(),
            },
            admitted: Instant::now(),
            clock,
        }
    }

    /// Wait for a place (queue consumers: a full pool stops them pulling, nothing is lost).
    /// The timeout of work admitted this way counts from when its batch starts, not from
    /// admission: a backlog waits, it does not time out. Fails only when the pool is closed.
    pub async fn admit(&self) -> Result<Admission, FnError> {
        let name = &self.shared.name;
        let permit = self
            .shared
            .admission
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| {
                FnError::new(
                    ErrorKind::Unavailable,
                    format!("function {name} is shutting down"),
                )
            })?;
        Ok(self.admitted(permit, Clock::Run))
    }

    /// Wait until a worker would otherwise sit idle — fewer invocations admitted than the
    /// workers run at once — and take a place then: for background work (a reprocess job),
    /// which so never queues ahead of live work and never holds the places that HTTP callers
    /// need. Like `admit`, its timeout counts from the start of its batch. Fails only when the
    /// pool is closed.
    pub async fn admit_spare(&self) -> Result<Admission, FnError> {
        loop {
            self.until_spare().await?;
            if let Ok(permit) = self.shared.admission.clone().try_acquire_owned() {
                return Ok(self.admitted(permit, Clock::Run));
            }
        }
    }

    /// Wait, taking nothing, until a worker would sit idle (fewer invocations admitted than
    /// the workers run at once): a job's consumer waits here before it pulls, so a busy node
    /// leaves a shared queue's pairs to idle ones. Fails only when the pool is closed.
    pub async fn until_spare(&self) -> Result<(), FnError> {
        let running = self.shared.cfg.workers * self.shared.cfg.max_batch;
        loop {
            // Listen before looking, so a place freed in between is not missed.
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.shared.admission.is_closed() {
                return Err(FnError::new(
                    ErrorKind::Unavailable,
                    format!("function {} is shutting down", self.shared.name),
                ));
            }
            if self.in_flight() < running {
                return Ok(());
            }
            freed.await;
        }
    }

    /// Reserve a place, or refuse at once. Call before reading the request body. The timeout
    /// counts from here: the caller's wait is part of it.
    pub fn try_admit(&self) -> Result<Admission, FnError> {
        let name = &self.shared.name;
        match self.shared.admission.clone().try_acquire_owned() {
            Ok(permit) => Ok(self.admitted(permit, Clock::Admission)),
            Err(TryAcquireError::NoPermits) => {
                let err = FnError::new(
                    ErrorKind::Overloaded,
                    format!(
                        "function {name} is at capacity ({} invocations in flight); retry later",
                        self.shared.cfg.capacity()
                    ),
                );
                record(name, Err(&err));
                Err(err)
            }
            Err(TryAcquireError::Closed) => {
                let err = FnError::new(
                    ErrorKind::Unavailable,
                    format!("function {name} is shutting down"),
                );
                record(name, Err(&err));
                Err(err)
            }
        }
    }

    /// Stop admitting; admitted work still finishes.
    pub fn close(&self) {
        self.shared.admission.close();
        self.shared.freed.notify_waiters();
    }
}

/// A reserved place in a pool; `run` spends it.
pub struct Admission {
    shared: Arc<Shared>,
    ticket: Ticket,
    admitted: Instant,
    clock: Clock,
}

impl Admission {
    /// Give the place back without running, counting the invocation under `err`'s kind (the
    /// caller's body was too large, or too slow to arrive).
    pub fn refuse(self, err: FnError) -> FnError {
        record(&self.shared.name, Err(&err));
        err
    }

    /// Run one input through the function, within the pool's timeout (from admission, or from
    /// the start of its batch; see `Pool::admit`).
    pub async fn run(self, input: Input) -> Result<Output, FnError> {
        let name = self.shared.name.clone();
        let result = self.run_inner(input).await;
        record(&name, result.as_ref().map(|_| ()));
        result
    }

    async fn run_inner(self, input: Input) -> Result<Output, FnError> {
        let cfg = &self.shared.cfg;
        let len = (input.source.as_ref()).map_or(input.bytes.len() as u64, |s| s.len());
        if len > cfg.max_input {
            return Err(FnError::new(
                ErrorKind::TooLarge,
                format!(
                    "the input is {len} bytes, over this function's limit of {}",
                    cfg.max_input
                ),
            ));
        }
        let (deadline, started) = match self.clock {
            Clock::Admission => (Deadline::At(self.admitted + cfg.timeout), None),
            Clock::Run => {
                let (tx, rx) = oneshot::channel();
                (Deadline::FromStart(cfg.timeout, Some(tx)), Some(rx))
            }
        };
        let (reply, rx) = oneshot::channel();
        let job = Job {
            input,
            deadline,
            admitted: self.admitted,
            reply,
            _ticket: self.ticket,
        };
        // The channel holds as many jobs as there are permits, so it cannot be full here; if it
        // is closed the pool is gone. Either way the caller hears why instead of a panic.
        if let Err(e) = self.shared.tx.try_send(job) {
            let kind = match e {
                mpsc::error::TrySendError::Full(_) => ErrorKind::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ErrorKind::Unavailable,
            };
            return Err(FnError::new(
                kind,
                format!("function {} cannot take work now", cfg.name),
            ));
        }
        let deadline = match started {
            None => self.admitted + cfg.timeout,
            Some(started) => match started.await {
                Ok(d) => d,
                // Dropped unstarted (the pool closed): the reply says why.
                Err(_) => {
                    return rx.await.unwrap_or_else(|_| {
                        Err(FnError::transient("the worker stopped before answering"))
                    });
                }
            },
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(FnError::transient("the worker stopped before answering")),
            Err(_) => Err(FnError::timeout(format!(
                "function {} did not finish within its timeout of {:?}",
                cfg.name, cfg.timeout
            ))),
        }
    }
}

fn record(function: &str, result: Result<(), &FnError>) {
    let outcome = match result {
        Ok(()) => m::OUTCOME_OK,
        Err(e) => e.kind().label(),
    };
    counter!(m::INVOCATIONS, "function" => function.to_string(), "outcome" => outcome).increment(1);
}

fn dispatch(
    cpu: &rayon::ThreadPool,
    function: &Arc<dyn Function>,
    name: &Arc<str>,
    (device, memory): (weir_gpu::Device, &Arc<DecodeMemory>),
    batch: Vec<Job>,
    slot: OwnedSemaphorePermit,
) {
    let now = Instant::now();
    // Inputs past their deadline, or whose caller hung up, are not worth running.
    let (live, dropped): (Vec<Job>, Vec<Job>) = batch
        .into_iter()
        .partition(|j| !j.expired(now) && !j.reply.is_closed());
    for job in dropped {
        answer(job, Err(FnError::timeout("timed out while queued")));
    }
    if live.is_empty() {
        return;
    }
    let label = name.to_string();
    for job in &live {
        histogram!(m::QUEUE_WAIT, "function" => label.clone())
            .record(now.duration_since(job.admitted).as_secs_f64());
    }
    histogram!(m::BATCH_SIZE, "function" => label.clone()).record(live.len() as f64);
    let span = tracing::info_span!("batch", function = %name, size = live.len(), %device);
    let (function, memory) = (function.clone(), memory.clone());
    let external = function.external();
    let run = move || {
        let _enter = span.enter();
        let mut live = live;
        let begun = Instant::now();
        let inputs: Vec<Input> = live.iter().map(|j| j.input.clone()).collect();
        let ctx = ExecCtx {
            device,
            deadlines: live.iter_mut().map(|j| j.start(begun).into_std()).collect(),
            memory,
            cores: weir_models::cores::Cores::machine(),
        };
        let started = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| function.call(&inputs, &ctx)));
        histogram!(m::FUNCTION_DURATION, "function" => label)
            .record(started.elapsed().as_secs_f64());
        let results = match outcome {
            Ok(results) if results.len() == live.len() => results,
            Ok(results) => {
                let msg = format!(
                    "the function gave {} results for {} inputs",
                    results.len(),
                    live.len()
                );
                tracing::error!("{msg}");
                vec![Err(FnError::transient(msg)); live.len()]
            }
            Err(panic) => {
                let msg = panic_message(&panic);
                tracing::error!(panic = %msg, "function crashed");
                vec![Err(FnError::transient(format!("the function crashed: {msg}"))); live.len()]
            }
        };
        drop(slot);
        for (job, result) in live.into_iter().zip(results) {
            answer(job, result);
        }
    };
    // Users' code runs in processes of its own: its batches wait, so they wait on threads that
    // are not the CPU pool's (the pool's worker limit bounds how many).
    if external {
        tokio::task::spawn_blocking(run);
    } else {
        cpu.spawn(run);
    }
}

/// Free the job's place, then answer: a caller that has its answer holds nothing.
fn answer(job: Job, result: Result<Output, FnError>) {
    let Job {
        reply,
        _ticket: ticket,
        ..
    } = job;
    drop(ticket);
    let _ = reply.send(result);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
