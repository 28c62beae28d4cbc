//! Metric names of the model repository (the pools' are in weir-workers' `metric_names`, the
//! pipeline's in weir-pipeline's).

/// Histogram: seconds to load a model version, by `model` and `backend`.
pub const MODEL_LOAD: &str = "weir_model_load_seconds";
/// Counter: model versions unloaded, by `model` and `reason` (`budget`, `request`, `idle`).
pub const MODEL_UNLOADS: &str = "weir_model_unloads_total";
/// Gauge: bytes of loaded models, by `device`.
pub const MODEL_MEMORY: &str = "weir_model_memory_bytes";
/// Histogram: rows per batch the engine ran, by `model` (dynamic batching across sources).
pub const MODEL_BATCH_SIZE: &str = "weir_model_batch_size";
