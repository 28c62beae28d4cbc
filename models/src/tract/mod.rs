//! The tract engine (pure Rust, CPU): the model is optimised once with a symbolic batch
//! dimension, so one plan serves every batch size, and shared by all callers.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, InferenceFact};
use weir_gpu::Device;

use crate::backend::{Backend, ModelError, Session, Signature};
use crate::config::ModelConfig;
use crate::tensor::{DataType, Tensor as WTensor};

pub struct Tract;

mod facts;
mod plans;

use facts::{Dim, agree, completed, dim_of, from_tract, show, to_tract};

struct TractSession {
    plans: plans::Plans,
    signature: Signature,
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
        file: &Path,
        config: &ModelConfig,
        device: Device,
    ) -> Result<Arc<dyn Session>, ModelError> {
        if device != Device::Cpu {
            return Err(ModelError::Load(format!(
                "instance_group.device: tract runs on the CPU only, not {device}"
            )));
        }
        let bytes = std::fs::read(file)
            .map_err(|e| ModelError::Load(format!("cannot read {}: {e}", file.display())))?;
        if bytes.is_empty() {
            return Err(ModelError::Load("model.onnx is empty (0 bytes)".into()));
        }
        // tract reports bad files as errors; a panic deep in a parser must not take the server.
        let loaded = std::panic::catch_unwind(|| prepare(&bytes, config)).unwrap_or_else(|_| {
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

fn prepare(bytes: &[u8], config: &ModelConfig) -> Result<TractSession, ModelError> {
    let onnx = tract_onnx::onnx()
        .with_ignore_value_info(true)
        .with_ignore_output_shapes(true);
    let mut model = onnx
        .model_for_read(&mut &bytes[..])
        .map_err(|e| bad_file("model.onnx is not a readable ONNX model", format!("{e:#}")))?;
    let batched = config.max_batch_size > 0;
    let n = model.sym("N");
    let mut inputs = Vec::new();
    let mut facts = Vec::new();
    let outlets = model
        .input_outlets()
        .map_err(|e| bad_file("inputs", e))?
        .to_vec();
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
        let file_dims: Vec<Dim> = fact
            .shape
            .dims()
            .map(|d| match d {
                GenericFactoid::Only(t) => dim_of(t),
                GenericFactoid::Any => Dim::Any("?".into()),
            })
            .collect();
        let spec = match config.inputs.iter().position(|s| s.name == name) {
            Some(i) => {
                let s = &config.inputs[i];
                agree(
                    &format!("inputs[{i}]"),
                    s,
                    datatype,
                    &file_dims,
                    batched,
                    config.max_batch_size,
                )?;
                s.clone()
            }
            None if config.inputs.is_empty() => completed(&name, datatype, &file_dims, batched)?,
            None => {
                return Err(ModelError::Load(format!(
                    "inputs: the model also takes an input '{name}' {} that config.yaml does not list",
                    show(&file_dims)
                )));
            }
        };
        let mut dims: TVec<TDim> = spec
            .dims
            .iter()
            .enumerate()
            .map(|(k, d)| match d {
                -1 => model.sym(&format!("{name}_{k}")).into(),
                d => TDim::Val(*d),
            })
            .collect();
        if batched {
            dims.insert(0, n.clone().into());
        }
        facts.push((dt, dims.clone()));
        let fact = InferenceFact::dt_shape(dt, dims);
        model
            .set_input_fact(ix, fact)
            .map_err(|e| bad_file(&format!("input '{name}'"), e))?;
        inputs.push(spec);
    }
    if let Some((i, s)) = config
        .inputs
        .iter()
        .enumerate()
        .find(|(_, s)| !inputs.iter().any(|x| x.name == s.name))
    {
        return Err(ModelError::Load(format!(
            "inputs[{i}].name: the model has no input '{}'",
            s.name
        )));
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
    let mut outputs = Vec::new();
    for (ix, name) in out_names.iter().enumerate() {
        let fact = typed.output_fact(ix).map_err(|e| bad_file("outputs", e))?;
        let datatype = from_tract(fact.datum_type).ok_or_else(|| {
            ModelError::Load(format!(
                "output '{name}': element type {:?} is not supported",
                fact.datum_type
            ))
        })?;
        let file_dims: Vec<Dim> = fact.shape.dims().iter().map(dim_of).collect();
        let spec = match config.outputs.iter().position(|s| &s.name == name) {
            Some(i) => {
                let s = &config.outputs[i];
                agree(
                    &format!("outputs[{i}]"),
                    s,
                    datatype,
                    &file_dims,
                    batched,
                    config.max_batch_size,
                )?;
                s.clone()
            }
            None => completed(name, datatype, &file_dims, batched)?,
        };
        outputs.push(spec);
    }
    if let Some((i, s)) = config
        .outputs
        .iter()
        .enumerate()
        .find(|(_, s)| !out_names.contains(&s.name))
    {
        return Err(ModelError::Load(format!(
            "outputs[{i}].name: the model has no output '{}' (it has: {})",
            s.name,
            out_names.join(", ")
        )));
    }
    drop(typed);
    let plans = plans::Plans::new(base, facts, batched);
    // The one-row plan now: a model that cannot be compiled fails at load, not on a request.
    plans.plan(1).map_err(ModelError::Load)?;
    Ok(TractSession {
        plans,
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
        let sizes = plans::chunks(rows, max);
        if sizes.len() == 1 {
            return self.run_plan(inputs, rows);
        }
        // Row ranges of the inputs, run one plan each, outputs joined along the batch.
        let mut joined: Vec<WTensor> = Vec::new();
        let mut start = 0;
        for n in sizes {
            let part: Vec<WTensor> = inputs.iter().map(|t| rows_of(t, start, n)).collect();
            let out = self.run_plan(&part, n)?;
            if joined.is_empty() {
                joined = out;
            } else {
                for (j, o) in joined.iter_mut().zip(out) {
                    j.shape[0] += o.shape.first().copied().unwrap_or(0);
                    j.data.extend_from_slice(&o.data);
                }
            }
            start += n;
        }
        Ok(joined)
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
            .zip(&self.signature.outputs)
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
}
