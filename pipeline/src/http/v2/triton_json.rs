//! Model metadata and configuration in the JSON shapes Triton answers with, so its clients read
//! Weir's answers unchanged.

use serde_json::{Value, json};
use weir_models::LoadedModel;
use weir_models::config::{TensorSpec, VersionPolicy};

/// What `/v2/models/{m}` says for the ONNX runtime that serves it.
pub fn platform(backend: &str) -> &'static str {
    match backend {
        "ort" => "onnxruntime_onnx",
        _ => "tract_onnx",
    }
}

/// `GET /v2/models/{m}[/versions/{v}]`: shapes with the batch dimension (-1) in front.
pub fn metadata(m: &LoadedModel, versions: &[String]) -> Value {
    let tensors = |specs: &[TensorSpec]| -> Vec<Value> {
        specs
            .iter()
            .map(|s| {
                let mut shape = s.dims.clone();
                if m.signature.max_batch_size > 0 {
                    shape.insert(0, -1);
                }
                json!({"name": s.name, "datatype": s.datatype.name(), "shape": shape})
            })
            .collect()
    };
    json!({
        "name": m.name,
        "versions": versions,
        "platform": platform(m.backend),
        "backend": m.backend,
        "inputs": tensors(&m.signature.inputs),
        "outputs": tensors(&m.signature.outputs),
    })
}

/// `GET /v2/models/{m}/config`: Triton's model configuration (dims without the batch dimension,
/// int64 fields as numbers, every field printed as protobuf JSON prints defaults).
pub fn config(m: &LoadedModel) -> Value {
    let c = &m.config;
    let input: Vec<Value> = m
        .signature
        .inputs
        .iter()
        .map(|s| {
            json!({"name": s.name, "data_type": s.datatype.config_name(), "format": "FORMAT_NONE",
                "dims": s.dims, "is_shape_tensor": false, "allow_ragged_batch": false, "optional": false})
        })
        .collect();
    let output: Vec<Value> = m
        .signature
        .outputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let labels = if i == 0 {
                c.labels.clone().unwrap_or_default()
            } else {
                String::new()
            };
            json!({"name": s.name, "data_type": s.datatype.config_name(), "dims": s.dims,
                "label_filename": labels, "is_shape_tensor": false})
        })
        .collect();
    let version_policy = match &c.version_policy {
        VersionPolicy::Latest => json!({"latest": {"num_versions": 1}}),
        VersionPolicy::All => json!({"all": {}}),
        VersionPolicy::Specific(v) => json!({"specific": {"versions": v}}),
    };
    let (kind, gpus) = match m.device {
        weir_models::Device::Cpu => ("KIND_CPU", vec![]),
        weir_models::Device::Cuda(n) => ("KIND_GPU", vec![n]),
    };
    let mut out = json!({
        "name": m.name,
        "platform": platform(m.backend),
        "backend": m.backend,
        "version_policy": version_policy,
        "max_batch_size": m.signature.max_batch_size,
        "input": input,
        "output": output,
        "instance_group": [{"name": m.name, "kind": kind, "count": c.instance_group.count,
            "gpus": gpus, "secondary_devices": [], "profile": [], "passive": false, "host_policy": ""}],
        "default_model_filename": "model.onnx",
        "parameters": {},
        "model_warmup": [],
    });
    if let Some(n) = c.parameters.intra_op_thread_count {
        out["parameters"]["intra_op_thread_count"] = json!({"string_value": n.to_string()});
    }
    if let Some(b) = &c.dynamic_batching {
        out["dynamic_batching"] = json!({
            "preferred_batch_size": b.preferred_batch_size,
            "max_queue_delay_microseconds": b.max_queue_delay.as_micros() as u64,
            "preserve_ordering": false,
            "priority_levels": 0,
            "default_priority_level": 0,
            "priority_queue_policy": {},
        });
    }
    out
}
