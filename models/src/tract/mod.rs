//! The tract engine (pure Rust, CPU): the model is optimised once with a symbolic batch
//! dimension, so one plan serves every batch size, and shared by all callers.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, InferenceFact};
use weir_gpu::Device;

use crate::backend::{Backend, ModelError, Session, Signature};
use crate::config::ModelConfig;
use crate::tensor::{DataType, Tensor as WTensor};

pub struct Tract;

mod plans;
mod rows;

use crate::facts::{Declared, Dim, reconcile};

struct TractSession {
    plans: plans::Plans,
    signature: Signature,
    /// What each way of running rows has cost, for choosing between them (`rows.rs`).
    costs: rows::Costs,
}

impl Backend for Tract {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn gpu_capable(&self) -> bool {
        false
    }

    fn load(
        &self,
        bytes: &[u8],
        config: &ModelConfig,
        _cpu: Device,
    ) -> Result<Arc<dyn Session>, ModelError> {
        // tract reports bad files as errors; a panic deep in a parser must not take the server.
        let loaded = std::panic::catch_unwind(|| prepare(bytes, config)).unwrap_or_else(|_| {
            Err(ModelError::Load(
                "model.onnx could not be read (the ONNX parser failed)".into(),
            ))
        })?;
        Ok(Arc::new(loaded))
    }
}

fn bad_file(what: &str, e: impl std::fmt::Display) -> ModelError {
    ModelError::Load(format!("{what}: {e}"))
}

/// Exporters write files where several nodes share a name (Silero VAD's has 98 `F0::anon`
/// constants); onnxruntime accepts them, tract's graph compaction does not. Later ones get a
/// `#n` suffix: names only label nodes, the graph is wired by tensor names.
fn unique_node_names(graph: &mut tract_onnx::pb::GraphProto) {
    let mut seen = std::collections::HashSet::new();
    for node in &mut graph.node {
        let mut k = 1;
        while !node.name.is_empty() && !seen.insert(node.name.clone()) {
            let base = node.name.split('#').next().unwrap_or_default().to_string();
            node.name = format!("{base}#{k}");
            k += 1;
        }
    }
}

fn prepare(bytes: &[u8], config: &ModelConfig) -> Result<TractSession, ModelError> {
    let onnx = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .with_ignore_output_shapes(true);
    let unreadable =
        |e: TractError| bad_file("model.onnx is not a readable ONNX model", format!("{e:#}"));
    let mut proto = onnx
        .proto_model_for_read(&mut &bytes[..])
        .map_err(unreadable)?;
    if let Some(graph) = proto.graph.as_mut() {
        unique_node_names(graph);
    }
    let mut model = onnx.model_for_proto_model(&proto).map_err(unreadable)?;
    let batched = config.max_batch_size > 0;
    let n = model.sym("N");
    let outlets = model
        .input_outlets()
        .map_err(|e| bad_file("inputs", e))?
        .to_vec();
    let mut declared = Vec::new();
    for (ix, outlet) in outlets.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(ix).map_err(|e| bad_file("inputs", e))?;
        let dt = fact
            .datum_type
            .concretize()
            .ok_or_else(|| ModelError::Load(format!("input '{name}' has no element type")))?;
        let datatype = from_tract(dt).ok_or_else(|| {
            ModelError::Load(format!(
                "input '{name}': element type {dt:?} is not supported"
            ))
        })?;
        let dims: Vec<Dim> = fact
            .shape
            .dims()
            .map(|d| match d {
                GenericFactoid::Only(t) => dim_of(t),
                GenericFactoid::Any => Dim::Any("?".into()),
            })
            .collect();
        declared.push(Declared {
            name,
            datatype,
            dims,
        });
    }
    let inputs = reconcile("inputs", &declared, config)?;
    let mut facts = Vec::new();
    for (ix, spec) in inputs.iter().enumerate() {
        let dt = to_tract(spec.datatype).unwrap_or(DatumType::F32);
        let mut dims: TVec<TDim> = spec
            .dims
            .iter()
            .enumerate()
            .map(|(k, d)| match d {
                -1 => model.sym(&format!("{}_{k}", spec.name)).into(),
                d => TDim::Val(*d),
            })
            .collect();
        if batched {
            dims.insert(0, n.clone().into());
        }
        facts.push((dt, dims.clone()));
        model
            .set_input_fact(ix, InferenceFact::dt_shape(dt, dims))
            .map_err(|e| bad_file(&format!("input '{}'", spec.name), e))?;
    }
    let out_names: Vec<String> = model
        .output_outlets()
        .map_err(|e| bad_file("outputs", e))?
        .iter()
        .map(|o| {
            model
                .outlet_label(*o)
                .map(str::to_string)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        })
        .collect();
    let base = model.clone();
    let typed = model
        .into_typed()
        .map_err(|e| bad_file("tract cannot analyse the model", format!("{e:#}")))?;
    let mut declared = Vec::new();
    for (ix, name) in out_names.into_iter().enumerate() {
        let fact = typed.output_fact(ix).map_err(|e| bad_file("outputs", e))?;
        let datatype = from_tract(fact.datum_type).ok_or_else(|| {
            ModelError::Load(format!(
                "output '{name}': element type {:?} is not supported",
                fact.datum_type
            ))
        })?;
        let dims = fact.shape.dims().iter().map(dim_of).collect();
        declared.push(Declared {
            name,
            datatype,
            dims,
        });
    }
    let outputs = reconcile("outputs", &declared, config)?;
    drop(typed);
    let plans = plans::Plans::new(base, facts, batched);
    // The one-row plan now: a model that cannot be compiled fails at load, not on a request.
    plans.plan(1).map_err(ModelError::Load)?;
    Ok(TractSession {
        plans,
        costs: rows::Costs::default(),
        signature: Signature {
            max_batch_size: config.max_batch_size,
            inputs,
            outputs,
        },
    })
}

impl Session for TractSession {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn run(&self, inputs: &[WTensor]) -> Result<Vec<WTensor>, ModelError> {
        let max = self.signature.max_batch_size;
        let rows = match inputs.first().and_then(|t| t.shape.first()) {
            Some(&r) if max > 0 => r,
            _ => return self.run_plan(inputs, 0),
        };
        // Row ranges of the inputs, run one plan each (or one row at a time, where that has
        // been cheaper), outputs joined along the batch.
        let mut joined: Vec<WTensor> = Vec::new();
        let mut start = 0;
        for n in plans::chunks(rows, max) {
            let out = if n == rows {
                rows::run(self, inputs, n)?
            } else {
                let part: Vec<WTensor> = inputs.iter().map(|t| rows_of(t, start, n)).collect();
                rows::run(self, &part, n)?
            };
            append_rows(&mut joined, out);
            start += n;
        }
        Ok(joined)
    }
}

/// `out`'s rows after those of `joined`, output by output (the first `out` becomes `joined`).
fn append_rows(joined: &mut Vec<WTensor>, out: Vec<WTensor>) {
    if joined.is_empty() {
        *joined = out;
        return;
    }
    for (j, o) in joined.iter_mut().zip(out) {
        j.shape[0] += o.shape.first().copied().unwrap_or(0);
        j.data.extend_from_slice(&o.data);
    }
}

/// Rows `start..start + n` of a batched tensor.
fn rows_of(t: &WTensor, start: usize, n: usize) -> WTensor {
    let rb = t.row_bytes();
    let mut shape = t.shape.clone();
    shape[0] = n;
    WTensor {
        name: t.name.clone(),
        datatype: t.datatype,
        shape,
        data: t.data[start * rb..(start + n) * rb].to_vec(),
    }
}

impl TractSession {
    fn run_plan(&self, inputs: &[WTensor], rows: usize) -> Result<Vec<WTensor>, ModelError> {
        let plan = self.plans.plan(rows).map_err(ModelError::Run)?;
        run_on(&plan, inputs, &self.signature.outputs)
    }
}

/// One run of `plan` over `inputs`, its outputs named by `outputs`.
fn run_on(
    plan: &Arc<TypedRunnableModel>,
    inputs: &[WTensor],
    outputs: &[crate::config::TensorSpec],
) -> Result<Vec<WTensor>, ModelError> {
    let mut values: TVec<TValue> = TVec::new();
    for t in inputs {
        let dt = to_tract(t.datatype).ok_or_else(|| {
            ModelError::BadInput(format!(
                "input '{}': {} is not supported",
                t.name, t.datatype
            ))
        })?;
        if t.datatype == DataType::Bool && t.data.iter().any(|b| *b > 1) {
            return Err(ModelError::BadInput(format!(
                "input '{}': BOOL elements must be 0 or 1",
                t.name
            )));
        }
        // Safety: `dt` is a plain-old-data type (checked above; bools are 0 or 1), and
        // from_raw_dt checks the byte length against the shape before copying.
        let tensor = unsafe { Tensor::from_raw_dt(dt, &t.shape, &t.data) }
            .map_err(|e| ModelError::BadInput(format!("input '{}': {e}", t.name)))?;
        values.push(tensor.into_tvalue());
    }
    let out = plan
        .run(values)
        .map_err(|e| ModelError::Run(format!("{e:#}")))?;
    out.iter()
        .zip(outputs)
        .map(|(v, spec)| {
            let datatype = from_tract(v.datum_type()).ok_or_else(|| {
                ModelError::Run(format!("output '{}' has an unsupported type", spec.name))
            })?;
            Ok(WTensor {
                name: spec.name.clone(),
                datatype,
                shape: v.shape().to_vec(),
                data: v.as_bytes().to_vec(),
            })
        })
        .collect()
}

fn dim_of(d: &TDim) -> Dim {
    match d.to_i64() {
        Ok(n) => Dim::Fixed(n),
        Err(_) => Dim::Any(d.to_string()),
    }
}

fn from_tract(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        DatumType::U16 => DataType::Uint16,
        DatumType::U32 => DataType::Uint32,
        DatumType::U64 => DataType::Uint64,
        DatumType::I8 => DataType::Int8,
        DatumType::I16 => DataType::Int16,
        DatumType::I32 => DataType::Int32,
        DatumType::I64 => DataType::Int64,
        DatumType::F16 => DataType::Fp16,
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        _ => return None,
    })
}

fn to_tract(dt: DataType) -> Option<DatumType> {
    Some(match dt {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp16 => DatumType::F16,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_node_names_become_unique_and_others_stay() {
        let mut g = tract_onnx::pb::GraphProto::default();
        for name in ["c", "c", "x", "c", ""] {
            g.node.push(tract_onnx::pb::NodeProto {
                name: name.into(),
                ..Default::default()
            });
        }
        unique_node_names(&mut g);
        let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c", "c#1", "x", "c#2", ""]);
    }
}
