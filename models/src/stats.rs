//! Per model version statistics in the shape Triton's `/v2/models/{m}/stats` reports them:
//! requests (`inference_count` counts rows, as Triton does), executions, and time spent per stage.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Default)]
struct Counter {
    count: AtomicU64,
    ns: AtomicU64,
}

impl Counter {
    fn add(&self, n: u64, d: Duration) {
        self.count.fetch_add(n, Relaxed);
        self.ns.fetch_add(d.as_nanos() as u64, Relaxed);
    }
    fn get(&self) -> Duration2 {
        Duration2 {
            count: self.count.load(Relaxed),
            ns: self.ns.load(Relaxed),
        }
    }
}

/// `{"count", "ns"}`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Duration2 {
    pub count: u64,
    pub ns: u64,
}

#[derive(Default)]
pub struct Stats {
    last_inference_ms: AtomicU64,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    success: Counter,
    fail: Counter,
    queue: Counter,
    compute_input: Counter,
    compute_infer: Counter,
    compute_output: Counter,
    batches: Mutex<BTreeMap<usize, [Counter; 3]>>,
    mixed: AtomicU64,
}

/// How one request went, from its arrival to its answer.
pub struct RequestTimes {
    pub ok: bool,
    pub total: Duration,
}

/// How one execution (a batch on the engine) went.
pub struct ExecutionTimes {
    pub rows: usize,
    pub input: Duration,
    pub infer: Duration,
    pub output: Duration,
}

impl Stats {
    pub fn request(&self, rows: usize, t: RequestTimes) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_inference_ms.store(now, Relaxed);
        if t.ok {
            self.inference_count.fetch_add(rows as u64, Relaxed);
            self.success.add(1, t.total);
        } else {
            self.fail.add(1, t.total);
        }
    }

    /// How long one request waited before its execution began (zero when it ran at once).
    pub fn queued(&self, d: Duration) {
        self.queue.add(1, d);
    }

    /// A batch held requests from more than one source (HTTP and uploads, say).
    pub fn mixed_batch(&self) {
        self.mixed.fetch_add(1, Relaxed);
    }

    pub fn execution(&self, t: ExecutionTimes) {
        self.execution_count.fetch_add(1, Relaxed);
        self.compute_input.add(1, t.input);
        self.compute_infer.add(1, t.infer);
        self.compute_output.add(1, t.output);
        let mut b = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        let c = b.entry(t.rows).or_default();
        c[0].add(1, t.input);
        c[1].add(1, t.infer);
        c[2].add(1, t.output);
    }

    pub fn snapshot(&self, name: &str, version: u64) -> ModelStats {
        let batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
        ModelStats {
            name: name.to_string(),
            version: version.to_string(),
            last_inference: self.last_inference_ms.load(Relaxed),
            inference_count: self.inference_count.load(Relaxed),
            execution_count: self.execution_count.load(Relaxed),
            inference_stats: InferenceStats {
                success: self.success.get(),
                fail: self.fail.get(),
                queue: self.queue.get(),
                compute_input: self.compute_input.get(),
                compute_infer: self.compute_infer.get(),
                compute_output: self.compute_output.get(),
                cache_hit: Duration2::default(),
                cache_miss: Duration2::default(),
            },
            mixed_source_batches: self.mixed.load(Relaxed),
            memory_usage: Vec::new(),
            batch_stats: batches
                .iter()
                .map(|(rows, c)| BatchStats {
                    batch_size: *rows,
                    compute_input: c[0].get(),
                    compute_infer: c[1].get(),
                    compute_output: c[2].get(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelStats {
    pub name: String,
    pub version: String,
    /// Milliseconds since the epoch of the last request, 0 if none.
    pub last_inference: u64,
    pub inference_count: u64,
    pub execution_count: u64,
    pub inference_stats: InferenceStats,
    pub batch_stats: Vec<BatchStats>,
    /// Weir's own: batches that joined requests from different sources.
    pub mixed_source_batches: u64,
    /// Triton's: what the model takes on its device (`LoadedModel::statistics` fills it).
    pub memory_usage: Vec<MemoryUsage>,
}

/// Triton's `MemoryUsage`: `{"type": "CPU" | "GPU", "id", "byte_size"}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryUsage {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: u32,
    pub byte_size: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InferenceStats {
    pub success: Duration2,
    pub fail: Duration2,
    pub queue: Duration2,
    pub compute_input: Duration2,
    pub compute_infer: Duration2,
    pub compute_output: Duration2,
    pub cache_hit: Duration2,
    pub cache_miss: Duration2,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BatchStats {
    pub batch_size: usize,
    pub compute_input: Duration2,
    pub compute_infer: Duration2,
    pub compute_output: Duration2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_requests_and_batches_are_counted_apart() {
        let s = Stats::default();
        let ms = Duration::from_millis;
        for rows in [2, 3] {
            s.request(
                rows,
                RequestTimes {
                    ok: true,
                    total: ms(4),
                },
            );
        }
        s.request(
            1,
            RequestTimes {
                ok: false,
                total: ms(1),
            },
        );
        s.queued(ms(1));
        s.execution(ExecutionTimes {
            rows: 5,
            input: ms(1),
            infer: ms(2),
            output: ms(1),
        });
        let snap = s.snapshot("m", 1);
        assert_eq!((snap.inference_count, snap.execution_count), (5, 1));
        assert_eq!(snap.inference_stats.success.count, 2);
        assert_eq!(snap.inference_stats.success.ns, 8_000_000);
        assert_eq!(snap.inference_stats.fail.count, 1);
        assert_eq!(snap.inference_stats.queue.ns, 1_000_000);
        assert_eq!(snap.batch_stats[0].batch_size, 5);
        assert_eq!(snap.batch_stats[0].compute_infer.ns, 2_000_000);
        assert!(snap.last_inference > 0);
    }
}
