//! The metric names the worker pools emit, in one place, so dashboards and code cannot drift
//! apart. The pipeline's own (events, bus, triggers, HTTP) are in `weir_pipeline::metric_names`;
//! the models' in `weir_models::metric_names`.

/// Counter: invocations finished, labels `function`, `outcome` (`ok` or an `ErrorKind` label).
pub const INVOCATIONS: &str = "weir_invocations_total";
/// Histogram (seconds): admission to the start of the batch that ran it. Label `function`.
pub const QUEUE_WAIT: &str = "weir_queue_wait_seconds";
/// Histogram (inputs): the size of each batch run. Label `function`.
pub const BATCH_SIZE: &str = "weir_batch_size";
/// Histogram (seconds): one batch's compute time. Label `function`.
pub const FUNCTION_DURATION: &str = "weir_function_duration_seconds";
/// Gauge: invocations admitted and not yet finished (queued or running). Label `function`.
pub const IN_FLIGHT: &str = "weir_in_flight";
/// The label value of a successful invocation.
pub const OUTCOME_OK: &str = "ok";
