//! What a pool needs to know, resolved from a function spec by the pipeline.

use std::sync::Arc;
use std::time::Duration;

use weir_functions::memory::DecodeMemory;
use weir_gpu::Device;

#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The function's name, for metrics and logs.
    pub name: String,
    /// Batches that may run at once (`resources.workers.max`).
    pub workers: usize,
    /// Inputs per batch at most (`resources.batch.max_size`).
    pub max_batch: usize,
    /// How long the first input of a batch waits for company (`resources.batch.max_delay`).
    pub max_delay: Duration,
    /// Inputs admitted but not yet running, beyond those the workers hold (`resources.queue`).
    pub max_queue: usize,
    /// Per-invocation deadline (`resources.timeout`): from admission for HTTP callers, from the
    /// start of the batch for queue consumers.
    pub timeout: Duration,
    /// Largest input in bytes (`resources.max_input`).
    pub max_input: u64,
    /// Suggested back-off, sent as `Retry-After` when full.
    pub retry_after: Duration,
    pub device: Device,
    /// The process's decode-memory budget (`decode_memory_budget`), shared by every pool.
    pub decode_memory: Arc<DecodeMemory>,
}

impl PoolConfig {
    /// A small default useful in tests and examples.
    pub fn new(name: &str) -> Self {
        PoolConfig {
            name: name.to_string(),
            workers: 2,
            max_batch: 4,
            max_delay: Duration::from_millis(5),
            max_queue: 16,
            timeout: Duration::from_secs(10),
            max_input: 50_000_000,
            retry_after: Duration::from_secs(1),
            device: Device::Cpu,
            decode_memory: DecodeMemory::unlimited(),
        }
    }

    /// Invocations that may be admitted at once: running (workers × batch) plus waiting.
    pub fn capacity(&self) -> usize {
        self.workers * self.max_batch + self.max_queue
    }
}
