//! Metric names this crate records, in one place.

/// Worker processes of a `process` function, idle or busy (gauge, label `function`).
pub const PROCESS_WORKERS: &str = "weir_process_workers";
/// Worker processes started (counter, label `function`).
pub const PROCESS_STARTS: &str = "weir_process_starts_total";
/// Worker processes that ended before their time (counter, labels `function`, `reason`:
/// `start_failed` (died before serving: the crash backoff grows), `exited`, `timeout`).
pub const PROCESS_RESTARTS: &str = "weir_process_restarts_total";
/// Histogram, label `function`: how long a worker process held an invocation, from its `next`
/// answer to its `response` or `error` (Lambda's "Duration"). Weir's own cost per invocation is
/// the caller's time less this.
pub const PROCESS_DURATION: &str = "weir_process_duration_seconds";
/// Histogram, label `function`: a cold start's time from the call to its model being ready
/// again, after it was unloaded for idling or for the memory budget.
pub const COLD_START: &str = "weir_cold_start_seconds";
