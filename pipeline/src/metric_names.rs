//! The metric names the pipeline emits (HTTP, events, the bus, triggers, memory gauges), in one
//! place, so dashboards and code cannot drift apart. The pools' own (`weir_invocations_total`
//! and the batch figures) are in `weir_workers::metric_names`, the models' in
//! `weir_models::metric_names`.

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

/// Counter: objects a bucket poller listed. Label `function`.
pub const POLL_LISTED: &str = "weir_poll_listed_total";
/// Counter: `ObjectCreated` events a bucket poller emitted (new or changed objects). Label
/// `function`.
pub const POLL_EMITTED: &str = "weir_poll_emitted_total";
/// Counter: polling rounds that failed (the store or the state); the poller backs off and goes
/// on. Label `function`.
pub const POLL_ERRORS: &str = "weir_poll_errors_total";

/// Counter: cron events recorded on the bus. Labels `function`, `when`: `on_time`, or `missed`
/// for the one firing that stands for slots passed while the server was down.
pub const CRON_FIRED: &str = "weir_cron_fired_total";
/// Counter: cron events the bus could not take (tried again a second later). Label `function`.
pub const CRON_FAILED: &str = "weir_cron_errors_total";
