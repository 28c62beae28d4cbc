//! Every metric name Weir emits, in one place, so dashboards and code cannot drift apart.

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
/// Counter: HTTP responses, labels `route`, `status`.
pub const HTTP_RESPONSES: &str = "weir_http_responses_total";

/// Counter: storage events accepted by a trigger (webhook or upload).
pub const EVENTS_ACCEPTED: &str = "weir_events_accepted_total";
/// Counter: (event, function) pairs recorded on the bus. Label `function`.
pub const EVENTS_ROUTED: &str = "weir_events_routed_total";
/// Counter: pairs finished with outputs written. Label `function`.
pub const EVENTS_DONE: &str = "weir_events_done_total";
/// Counter: pairs given up on. Labels `function`, `kind`.
pub const EVENTS_DEAD_LETTERED: &str = "weir_events_dead_lettered_total";
/// Counter: storage events sent back to the bus, labels `function`, `kind`: retries, and with
/// `kind="overloaded"` events postponed for want of room, which spend no attempt.
pub const EVENTS_RETRIED: &str = "weir_events_retried_total";
/// Gauge: pairs on the bus not yet finished.
pub const BUS_DEPTH: &str = "weir_bus_depth";
/// Histogram (seconds): from the event's time to its outputs written. Label `function`.
pub const EVENT_LATENCY: &str = "weir_event_to_output_seconds";
/// Gauge (bytes): decoded pictures' memory reserved now, over every function (sampled with the
/// other gauges' upkeep, every 5 s).
pub const DECODE_MEMORY_IN_USE: &str = "weir_decode_memory_in_use_bytes";
/// Gauge (bytes): `decode_memory_budget`, set at start.
pub const DECODE_MEMORY_BUDGET: &str = "weir_decode_memory_budget_bytes";

/// The label value of a successful invocation.
pub const OUTCOME_OK: &str = "ok";
