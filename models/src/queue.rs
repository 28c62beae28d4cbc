//! Dynamic batching per model, across every source: HTTP infer requests and `classify` calls
//! (uploads) wait in one bounded queue and run together. Batches form as Triton's dynamic batcher
//! forms them: as soon as the waiting rows make any preferred size, the largest one they make goes
//! at once; otherwise everything that fits goes when the oldest request has waited
//! `max_queue_delay`. Batches run on the model's own threads (one per instance), so callers
//! waiting on a CPU pool can never starve the engine. Requests whose shapes beyond the batch
//! dimension differ are never mixed.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{ModelError, Session};
use crate::stats::{ExecutionTimes, Stats};
use crate::tensor::Tensor;

pub type Answer = Result<Vec<Tensor>, ModelError>;

/// One request in the queue: its inputs in the model's order, batch first.
pub struct Job {
    pub inputs: Vec<Tensor>,
    pub source: &'static str,
    pub enqueued: Instant,
    pub reply: tokio::sync::oneshot::Sender<Answer>,
}

impl Job {
    fn rows(&self) -> usize {
        self.inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(1)
    }
    /// Jobs can share a batch when every input agrees beyond the batch dimension.
    fn key(&self) -> Vec<&[usize]> {
        self.inputs
            .iter()
            .map(|t| t.shape.get(1..).unwrap_or(&[]))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub max_rows: usize,
    /// Batch sizes that go without waiting, ascending; empty means `max_rows` alone (Triton's
    /// default). Only the largest used to count, so a batch of 8 under `[8, 16]` idled for the
    /// whole delay, about 5% of the batched throughput at concurrency 8.
    pub preferred: Vec<usize>,
    pub max_delay: Duration,
    /// Requests waiting at most; more are refused (429).
    pub capacity: usize,
}

impl Policy {
    pub fn new(max_rows: usize, preferred: &[usize], max_delay: Duration, capacity: usize) -> Self {
        let mut preferred: Vec<usize> = preferred
            .iter()
            .copied()
            .filter(|&n| n > 0 && n <= max_rows)
            .collect();
        preferred.sort_unstable();
        preferred.dedup();
        if preferred.is_empty() {
            preferred.push(max_rows);
        }
        Policy {
            max_rows,
            preferred,
            max_delay,
            capacity,
        }
    }

    fn largest_preferred(&self) -> usize {
        self.preferred.last().copied().unwrap_or(self.max_rows)
    }
}

/// What the queue's head could run now: how many requests of its kind, in arrival order.
struct Plan {
    /// Requests making the largest preferred size reachable (or stopping short of overshooting
    /// the largest one); these go without waiting.
    ready: Option<usize>,
    /// Requests that fit in `max_rows`; these go once the oldest has waited `max_delay`.
    fitting: usize,
    oldest: Instant,
}

/// The queue's pure state: what is waiting, and which batch to take next.
#[derive(Default)]
pub struct Pending {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Pending {
    pub fn push(&mut self, job: Job, p: &Policy) -> Result<(), Job> {
        if self.closed || self.jobs.len() >= p.capacity {
            return Err(job);
        }
        self.jobs.push_back(job);
        Ok(())
    }

    /// Walk the oldest request's kind in arrival order, as Triton's `GetDynamicBatch` does.
    fn plan(&self, p: &Policy) -> Option<Plan> {
        let first = self.jobs.front()?;
        let key = first.key();
        let largest = p.largest_preferred();
        let (mut rows, mut fitting, mut ready) = (0, 0, None);
        for j in self.jobs.iter().filter(|j| j.key() == key) {
            let r = j.rows();
            if fitting > 0 && rows + r > p.max_rows {
                break;
            }
            if fitting > 0 && ready.is_none() && rows + r > largest {
                ready = Some(fitting);
            }
            rows += r;
            fitting += 1;
            if rows <= largest && p.preferred.contains(&rows) {
                ready = Some(fitting);
            }
        }
        if ready.is_none() && rows >= largest {
            ready = Some(fitting);
        }
        Some(Plan {
            ready,
            fitting,
            oldest: first.enqueued,
        })
    }

    /// When the oldest request stops waiting for company; `None` when nothing waits.
    pub fn due(&self, p: &Policy) -> Option<Instant> {
        let plan = self.plan(p)?;
        Some(match plan.ready {
            Some(_) => plan.oldest,
            None => plan.oldest + p.max_delay,
        })
    }

    /// The next batch if one is due at `now`: a preferred size at once, or after the delay
    /// every request of the oldest one's kind that fits.
    pub fn take(&mut self, now: Instant, p: &Policy) -> Option<Vec<Job>> {
        let plan = self.plan(p)?;
        let waited = now >= plan.oldest + p.max_delay;
        let n = match plan.ready {
            _ if waited => plan.fitting,
            Some(n) => n,
            None => return None,
        };
        let key: Vec<Vec<usize>> = self.jobs[0]
            .key()
            .into_iter()
            .map(<[usize]>::to_vec)
            .collect();
        let mut batch = Vec::with_capacity(n);
        let mut rest = VecDeque::with_capacity(self.jobs.len());
        while let Some(j) = self.jobs.pop_front() {
            let same = j.key().iter().zip(&key).all(|(a, b)| *a == b.as_slice());
            if same && batch.len() < n {
                batch.push(j);
            } else {
                rest.push_back(j);
            }
        }
        self.jobs = rest;
        Some(batch)
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

/// A model's queue and its instance threads; dropping it lets the threads finish what waits.
pub struct ModelQueue {
    shared: Arc<Shared>,
    policy: Policy,
}

impl ModelQueue {
    pub fn start(
        name: &str,
        session: Arc<dyn Session>,
        stats: Arc<Stats>,
        policy: Policy,
        instances: usize,
    ) -> ModelQueue {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        });
        for i in 0..instances.max(1) {
            let (shared, session, stats) = (shared.clone(), session.clone(), stats.clone());
            let (model, policy) = (name.to_string(), policy.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("weir-model-{name}-{i}"))
                .spawn(move || serve(&shared, session.as_ref(), &stats, &policy, &model));
            if let Err(e) = spawned {
                tracing::error!(model = name, error = %e, "cannot start a model instance thread");
            }
        }
        ModelQueue { shared, policy }
    }

    /// Queue a request; the answer arrives on the receiver. Refused when the queue is full.
    pub fn submit(
        &self,
        inputs: Vec<Tensor>,
        source: &'static str,
    ) -> Result<tokio::sync::oneshot::Receiver<Answer>, ModelError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            inputs,
            source,
            enqueued: Instant::now(),
            reply: tx,
        };
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if pending.push(job, &self.policy).is_err() {
            return Err(ModelError::Overloaded(format!(
                "the model's queue is full ({} requests waiting); retry shortly",
                self.policy.capacity
            )));
        }
        drop(pending);
        self.shared.wake.notify_one();
        Ok(rx)
    }
}

impl Drop for ModelQueue {
    fn drop(&mut self) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .closed = true;
        self.shared.wake.notify_all();
    }
}

/// One instance: take due batches and run them until the queue closes and empties.
fn serve(shared: &Shared, session: &dyn Session, stats: &Stats, p: &Policy, model: &str) {
    loop {
        let batch = {
            let mut pending = shared.pending.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let now = Instant::now();
                if let Some(b) = pending.take(now, p) {
                    break b;
                }
                if pending.closed && pending.jobs.is_empty() {
                    return;
                }
                pending = match pending.due(p) {
                    Some(due) => shared
                        .wake
                        .wait_timeout(pending, due - now)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0),
                    None => shared.wake.wait(pending).unwrap_or_else(|e| e.into_inner()),
                };
            }
        };
        // A panicking engine fails its batch (the callers hear it) and the instance keeps serving.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(batch, session, stats, model)
        }));
        if ran.is_err() {
            tracing::error!(model, "the engine panicked; the batch failed");
        }
    }
}

/// Join the jobs' inputs along the batch, run once, and give each job its rows of the outputs.
fn run(mut batch: Vec<Job>, session: &dyn Session, stats: &Stats, model: &str) {
    // Waiting for cores (another model's batch holds them) counts as queue time.
    let held = crate::cores::Cores::machine().take(session.cores());
    let t0 = Instant::now();
    let rows: Vec<usize> = batch.iter().map(Job::rows).collect();
    let total: usize = rows.iter().sum();
    let mut sources: Vec<&str> = batch.iter().map(|j| j.source).collect();
    sources.dedup();
    metrics::histogram!(crate::metric_names::MODEL_BATCH_SIZE, "model" => model.to_string())
        .record(total as f64);
    if sources.len() > 1 {
        stats.mixed_batch();
    }
    for j in &batch {
        stats.queued(t0 - j.enqueued);
    }
    let joined = join(&mut batch);
    let t1 = Instant::now();
    let result = session.run(&joined);
    drop(held);
    let t2 = Instant::now();
    match result {
        Ok(outputs) => {
            let mut start = 0;
            for (job, n) in batch.into_iter().zip(rows) {
                let mine = outputs
                    .iter()
                    .map(|o| {
                        let rb = o.row_bytes();
                        let mut shape = o.shape.clone();
                        if let Some(first) = shape.first_mut() {
                            *first = n;
                        }
                        Tensor {
                            name: o.name.clone(),
                            datatype: o.datatype,
                            shape,
                            data: o.data[start * rb..(start + n) * rb].to_vec(),
                        }
                    })
                    .collect();
                start += n;
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => batch.into_iter().for_each(|j| {
            let _ = j.reply.send(Err(e.clone()));
        }),
    }
    stats.execution(ExecutionTimes {
        rows: total,
        input: t1 - t0,
        infer: t2 - t1,
        output: t2.elapsed(),
    });
}

/// The jobs' inputs as one batch: a lone job's are taken as they are, several are copied once
/// each into tensors sized for all of them.
fn join(batch: &mut [Job]) -> Vec<Tensor> {
    if let [only] = batch {
        return std::mem::take(&mut only.inputs);
    }
    let mut joined: Vec<Tensor> = batch[0]
        .inputs
        .iter()
        .enumerate()
        .map(|(i, first)| {
            let bytes = batch.iter().map(|j| j.inputs[i].data.len()).sum();
            Tensor {
                name: first.name.clone(),
                datatype: first.datatype,
                shape: first.shape.clone(),
                data: Vec::with_capacity(bytes),
            }
        })
        .collect();
    for (k, j) in batch.iter().enumerate() {
        for (a, b) in joined.iter_mut().zip(&j.inputs) {
            if k > 0 {
                a.shape[0] += b.shape[0];
            }
            a.data.extend_from_slice(&b.data);
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DataType;

    fn job(
        rows: usize,
        width: usize,
        at: Instant,
    ) -> (Job, tokio::sync::oneshot::Receiver<Answer>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = Tensor::new(
            "x",
            DataType::Uint8,
            vec![rows, width],
            vec![0; rows * width],
        )
        .unwrap();
        (
            Job {
                inputs: vec![t],
                source: "test",
                enqueued: at,
                reply: tx,
            },
            rx,
        )
    }

    fn policy(preferred: &[usize]) -> Policy {
        Policy::new(8, preferred, Duration::from_millis(10), 3)
    }

    #[test]
    fn a_batch_waits_for_company_until_enough_rows_or_the_delay() {
        let p = &policy(&[4]);
        let t = Instant::now();
        let mut q = Pending::default();
        let _r1 = q.push(job(1, 2, t).0, p).map_err(drop);
        assert!(q.take(t, p).is_none(), "one row waits for company");
        assert_eq!(q.due(p), Some(t + p.max_delay));
        assert_eq!(q.take(t + p.max_delay, p).map(|b| b.len()), Some(1));
        // Enough rows: due at once, and the batch takes everything that fits.
        assert!(q.push(job(2, 2, t).0, p).is_ok());
        assert!(q.push(job(2, 2, t).0, p).is_ok());
        assert_eq!(q.take(t, p).map(|b| b.len()), Some(2));
    }

    #[test]
    fn jobs_join_along_the_batch_in_order() {
        let t = Instant::now();
        let (mut a, mut b) = (job(2, 3, t).0, job(1, 3, t).0);
        a.inputs[0].data = (0..6).collect();
        b.inputs[0].data = vec![9; 3];
        let mut batch = vec![a, b];
        let joined = join(&mut batch);
        assert_eq!(joined[0].shape, vec![3, 3]);
        assert_eq!(joined[0].data, vec![0, 1, 2, 3, 4, 5, 9, 9, 9]);
        let mut lone = vec![job(4, 2, t).0];
        assert_eq!(join(&mut lone)[0].shape, vec![4, 2]);
    }

    #[test]
    fn batches_respect_max_rows_shapes_and_capacity() {
        let p = &policy(&[4]);
        let t = Instant::now();
        let mut q = Pending::default();
        assert!(q.push(job(5, 2, t).0, p).is_ok());
        assert!(q.push(job(2, 3, t).0, p).is_ok()); // another width: never joined
        assert!(q.push(job(4, 2, t).0, p).is_ok()); // 5 + 4 > 8 rows
        assert!(q.push(job(1, 2, t).0, p).is_err(), "the fourth is refused");
        let b = q.take(t, p).unwrap();
        assert_eq!(b.iter().map(Job::rows).collect::<Vec<_>>(), vec![5]);
        let later = t + p.max_delay;
        let b = q.take(later, p).unwrap();
        assert_eq!(b.iter().map(Job::rows).collect::<Vec<_>>(), vec![2]);
        let b = q.take(later, p).unwrap();
        assert_eq!(b.iter().map(Job::rows).collect::<Vec<_>>(), vec![4]);
        assert!(q.take(later, p).is_none());
    }

    /// Triton's rule: any preferred size goes at once (the largest the queue makes), not only the
    /// largest configured; the rest waits for company.
    #[test]
    fn any_preferred_size_goes_at_once_and_the_rest_waits() {
        let p = &policy(&[2, 4]);
        let t = Instant::now();
        let mut q = Pending::default();
        for _ in 0..3 {
            assert!(q.push(job(1, 2, t).0, p).is_ok());
        }
        assert_eq!(q.due(p), Some(t));
        assert_eq!(
            q.take(t, p).map(|b| b.len()),
            Some(2),
            "2 of 3 rows: a preferred size"
        );
        assert!(q.take(t, p).is_none(), "the third waits for company");
        assert_eq!(q.take(t + p.max_delay, p).map(|b| b.len()), Some(1));
    }

    #[test]
    fn rows_that_would_overshoot_the_largest_preferred_size_go_without_the_extra() {
        let p = &policy(&[4]);
        let t = Instant::now();
        let mut q = Pending::default();
        assert!(q.push(job(3, 2, t).0, p).is_ok());
        assert!(q.take(t, p).is_none(), "3 rows wait for a fourth");
        assert!(q.push(job(3, 2, t).0, p).is_ok());
        let b = q.take(t, p).unwrap();
        assert_eq!(b.iter().map(Job::rows).collect::<Vec<_>>(), vec![3]);
        // After the delay, everything that fits in max_rows goes together.
        assert!(q.push(job(3, 2, t).0, p).is_ok());
        let b = q.take(t + p.max_delay, p).unwrap();
        assert_eq!(b.iter().map(Job::rows).collect::<Vec<_>>(), vec![3, 3]);
    }

    #[test]
    fn without_preferred_sizes_a_batch_waits_for_max_rows() {
        let p = &policy(&[]);
        assert_eq!(p.preferred, vec![8]);
        let t = Instant::now();
        let mut q = Pending::default();
        assert!(q.push(job(4, 2, t).0, p).is_ok());
        assert!(q.push(job(3, 2, t).0, p).is_ok());
        assert!(q.take(t, p).is_none());
        assert!(q.push(job(1, 2, t).0, p).is_ok());
        assert_eq!(q.take(t, p).map(|b| b.len()), Some(3));
    }
}
