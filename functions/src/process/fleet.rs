//! A function's worker processes: at most `max` at once, `min` kept warm from the start, the
//! rest stopped after `idle_after` without work. A process that dies without serving (a crash at
//! start, an init error) is restarted after a backoff that doubles up to 30 s, so a crash loop
//! is slow, logged and counted (`weir_process_restarts_total`), never a hot loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use axum::body::Bytes;
use metrics::{counter, gauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::spec::Spec;
use super::worker::{Outcome, Worker};
use crate::metric_names as m;

/// How many processes, and for how long they stay without work (`resources.workers`).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub min: usize,
    pub max: usize,
    pub idle_after: Duration,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            min: 0,
            max: 1,
            idle_after: Duration::from_secs(90),
        }
    }
}

pub struct Fleet {
    spec: Mutex<Arc<Spec>>,
    sizes: Sizes,
    /// One per process that may run: a holder uses an idle worker or starts one.
    slots: Arc<Semaphore>,
    /// Warm workers without work, the most recently used last.
    idle: Mutex<Vec<Worker>>,
    backoff: Mutex<Backoff>,
    next_id: AtomicU64,
    scratch: Mutex<PathBuf>,
    /// Turns true once the server is up (`start`): workers need its store's address.
    ready: tokio::sync::watch::Sender<bool>,
}

/// The longest a process may take to ask for its first invocation before it is taken for hung.
const INIT_LIMIT: Duration = Duration::from_secs(60);

/// The restart delay after processes that died without serving.
#[derive(Debug, Default)]
pub struct Backoff {
    pub failures: u32,
    pub not_before: Option<Instant>,
    pub last: String,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(30);

    /// The delay after `failures` failures in a row: 100 ms, doubling, at most 30 s.
    pub fn delay(failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        Self::FIRST
            .saturating_mul(1u32 << (failures - 1).min(16))
            .min(Self::MOST)
    }

    fn failed(&mut self, now: Instant, why: &str) -> Duration {
        self.failures += 1;
        let delay = Self::delay(self.failures);
        self.not_before = Some(now + delay);
        self.last = why.to_string();
        delay
    }
}

/// A worker held for one invocation.
pub struct Lease {
    worker: Option<Worker>,
    _slot: OwnedSemaphorePermit,
}

impl Fleet {
    pub fn new(spec: Spec, sizes: Sizes) -> Arc<Fleet> {
        let sizes = Sizes {
            max: sizes.max.max(1),
            min: sizes.min.min(sizes.max.max(1)),
            ..sizes
        };
        Arc::new(Fleet {
            spec: Mutex::new(Arc::new(spec)),
            slots: Arc::new(Semaphore::new(sizes.max)),
            sizes,
            idle: Mutex::default(),
            backoff: Mutex::default(),
            next_id: AtomicU64::new(1),
            scratch: Mutex::new(std::env::temp_dir().join("weir-process")),
            ready: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn name(&self) -> String {
        lock(&self.spec).name.clone()
    }

    pub fn spec(&self) -> Arc<Spec> {
        lock(&self.spec).clone()
    }

    /// The server is up: workers reach the store with `store_env`, keep scratch under
    /// `scratch`, and `min` of them start now; the idle reaper runs from here on.
    pub fn start(
        self: &Arc<Self>,
        store_env: std::collections::BTreeMap<String, String>,
        scratch: PathBuf,
    ) {
        {
            let mut spec = lock(&self.spec);
            let mut s = (**spec).clone();
            s.store_env = store_env;
            *spec = Arc::new(s);
        }
        // Absolute: the worker's HOME and TMPDIR are read after it changes directory. Emptied:
        // a previous run's workers may have left theirs.
        let scratch = std::path::absolute(scratch.join(self.name())).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&scratch);
        *lock(&self.scratch) = scratch;
        self.ready.send_replace(true);
        let weak = Arc::downgrade(self);
        tokio::spawn(keep(weak));
    }

    /// A worker for one invocation: an idle one, or a new one while fewer than `max` run.
    pub async fn lease(&self, deadline: Instant) -> Result<Lease, String> {
        if Instant::now() >= deadline {
            return Err("the deadline passed before a worker was asked".into());
        }
        let mut ready = self.ready.subscribe();
        tokio::time::timeout_at(deadline, ready.wait_for(|r| *r))
            .await
            .map_err(|_| "the server did not finish starting before the deadline".to_string())?
            .map_err(|_| "the function is stopping".to_string())?;
        let slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| "every worker process stayed busy until the deadline".to_string())?
            .map_err(|_| "the function is stopping".to_string())?;
        loop {
            let warm = lock(&self.idle).pop();
            match warm {
                Some(w) if w.alive() => {
                    return Ok(Lease {
                        worker: Some(w),
                        _slot: slot,
                    });
                }
                Some(dead) => self.buried(dead),
                None => break,
            }
        }
        let worker = self.start_one(Some(deadline)).await?;
        Ok(Lease {
            worker: Some(worker),
            _slot: slot,
        })
    }

    /// Start a process, after the crash backoff if one is in force (at most until `deadline`).
    async fn start_one(&self, deadline: Option<Instant>) -> Result<Worker, String> {
        let wait = {
            let b = lock(&self.backoff);
            b.not_before.map(|t| (t, b.last.clone()))
        };
        if let Some((t, last)) = wait.filter(|(t, _)| *t > Instant::now()) {
            if deadline.is_some_and(|d| d < t) {
                return Err(format!(
                    "the function's processes keep failing ({last}); the next start is held back \
                     past this invocation's deadline"
                ));
            }
            tokio::time::sleep_until(t).await;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let scratch = lock(&self.scratch).join(format!("worker-{id}"));
        let spec = self.spec();
        match Worker::spawn(&spec, id, scratch).await {
            Ok(w) => {
                self.count_workers();
                counter!(m::PROCESS_STARTS, "function" => spec.name.clone()).increment(1);
                Ok(w)
            }
            Err(why) => {
                self.failed(&why);
                Err(why)
            }
        }
    }

    /// Run one invocation on a leased worker and give the worker back (or stop it).
    pub async fn invoke(
        &self,
        lease: &mut Lease,
        id: String,
        body: Bytes,
        deadline: Instant,
    ) -> Outcome {
        let Some(mut w) = lease.worker.take() else {
            return Outcome::Ended("the lease was used twice".into());
        };
        let outcome = w.invoke(id, body, deadline).await;
        match &outcome {
            Outcome::Ok(_) | Outcome::Failed(_) => {
                lock(&self.backoff).failures = 0;
                self.rest(w, false);
            }
            // Still starting: kept, unless its start has taken longer than any start should.
            Outcome::NotTaken if w.served == 0 && w.born.elapsed() > INIT_LIMIT => {
                self.failed(&format!(
                    "the process did not ask for work within {INIT_LIMIT:?} of starting"
                ));
                self.stopped(w);
            }
            // Behind the ready ones: the next lease should not wait on its start.
            Outcome::NotTaken => self.rest(w, true),
            Outcome::Lost(_) => self.buried(w),
            Outcome::Ended(why) => {
                if w.served == 0 {
                    self.failed(why);
                } else {
                    counter!(m::PROCESS_RESTARTS, "function" => self.name(), "reason" => "exited")
                        .increment(1);
                }
                self.stopped(w);
            }
            Outcome::TimedOut => {
                counter!(m::PROCESS_RESTARTS, "function" => self.name(), "reason" => "timeout")
                    .increment(1);
                self.stopped(w);
            }
        }
        outcome
    }

    fn failed(&self, why: &str) {
        let delay = lock(&self.backoff).failed(Instant::now(), why);
        let name = self.name();
        counter!(m::PROCESS_RESTARTS, "function" => name.clone(), "reason" => "start_failed")
            .increment(1);
        tracing::warn!(function = %name, reason = why, ?delay, "a worker process failed to start; the next start waits");
    }

    /// Stop every idle worker and take no more work; busy ones stop when they finish.
    pub fn stop(&self) {
        self.slots.close();
        let idle: Vec<Worker> = lock(&self.idle).drain(..).collect();
        for w in idle {
            self.stopped(w);
        }
    }

    /// A worker back from an invocation waits for the next, unless the fleet is stopping;
    /// `behind` the others when it is still starting, so a lease takes a ready one first.
    fn rest(&self, w: Worker, behind: bool) {
        if self.slots.is_closed() {
            self.stopped(w);
        } else if behind {
            lock(&self.idle).insert(0, w);
        } else {
            lock(&self.idle).push(w);
        }
    }

    /// A worker found dead between invocations: one that never served counts toward the
    /// crash backoff, as a process that died in its start.
    fn buried(&self, w: Worker) {
        if w.served == 0 {
            self.failed(&w.why_ended());
        } else {
            counter!(m::PROCESS_RESTARTS, "function" => self.name(), "reason" => "exited")
                .increment(1);
        }
        self.stopped(w);
    }

    fn stopped(&self, w: Worker) {
        drop(w);
        self.count_workers();
    }

    fn count_workers(&self) {
        gauge!(m::PROCESS_WORKERS, "function" => self.name()).set(self.counts().1 as f64);
    }

    /// Stop idle workers past `idle_after` while more than `min` run, and start workers up to
    /// `min`. Called every so often by `keep`.
    async fn tend(&self) {
        let now = Instant::now();
        let stale: Vec<Worker> = {
            let mut idle = lock(&self.idle);
            let mut live = idle.len() + self.busy();
            let mut stale = Vec::new();
            // Oldest first: the most recently used stay warm.
            let mut i = 0;
            while i < idle.len() {
                let w = &idle[i];
                let expired = now.duration_since(w.idle_since) >= self.sizes.idle_after;
                if !w.alive() || (expired && live > self.sizes.min) {
                    stale.push(idle.remove(i));
                    live -= 1;
                } else {
                    i += 1;
                }
            }
            stale
        };
        for w in stale {
            if w.alive() {
                tracing::debug!(function = %self.name(), worker = w.id, "stopping an idle worker process");
                self.stopped(w);
            } else {
                self.buried(w);
            }
        }
        let held_back = lock(&self.backoff)
            .not_before
            .is_some_and(|t| t > Instant::now());
        if self.counts().1 < self.sizes.min
            && !held_back
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            if let Ok(w) = self.start_one(None).await {
                self.rest(w, false);
            }
            drop(slot);
        }
    }

    /// Workers leased now (running an invocation, or starting for one).
    fn busy(&self) -> usize {
        self.sizes.max - self.slots.available_permits()
    }

    /// Workers now: (idle, all).
    pub fn counts(&self) -> (usize, usize) {
        let idle = lock(&self.idle).len();
        (idle, idle + self.busy())
    }
}

/// Tends the fleet every quarter of `idle_after` (between 50 ms and 1 s) until it is dropped.
async fn keep(fleet: Weak<Fleet>) {
    loop {
        let every = match fleet.upgrade() {
            Some(f) if f.slots.is_closed() => return,
            Some(f) => {
                f.tend().await;
                (f.sizes.idle_after / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
            }
            None => return,
        };
        tokio::time::sleep(every).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_from_100ms_doubling_to_30s() {
        assert_eq!(Backoff::delay(0), Duration::ZERO);
        assert_eq!(Backoff::delay(1), Duration::from_millis(100));
        assert_eq!(Backoff::delay(2), Duration::from_millis(200));
        assert_eq!(Backoff::delay(5), Duration::from_millis(1600));
        assert_eq!(Backoff::delay(12), Duration::from_secs(30));
        assert_eq!(Backoff::delay(400), Duration::from_secs(30));
    }
}
