//! The tract engine (pure Rust, CPU): the model is optimised once with a symbolic batch
//! dimension, so one plan serves every batch size, and shared by all callers.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, InferenceFact};
use weir_gpu::Device;

use crate::backend::{Backend, ModelError, Session, Signature};
use crate::config::{ModelConfig, TensorSpec};
use crate::tensor::{DataType, Tensor as WTensor};

pub struct Tract;

mod plans;

struct TractSession {
    plans: plans::Plans,
    signature: Signature,
}

/// A model dimension as read from the file.
#[derive(Debug, Clone, PartialEq)]
enum Dim {
    Fixed(i64),
    /// Symbolic (`N`, `batch_size`) or unknown.
    Any(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Any(s) => f.write_str(s),
        }
    }
}

fn show(dims: &[Dim]) -> String {
    let v: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn dim_of(d: &TDim) -> Dim {
    match d.to_i64() {
        Ok(n) => Dim::Fixed(n),
        Err(_) => Dim::Any(d.to_string()),
    }
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

/// A spec from the file alone (config.yaml left inputs/outputs out).
fn completed(
    name: &str,
    datatype: DataType,
    file_dims: &[Dim],
    batched: bool,
) -> Result<TensorSpec, ModelError> {
    let rest = if batched {
        file_dims.get(1..).unwrap_or(&[])
    } else {
        file_dims
    };
    if batched && file_dims.is_empty() {
        return Err(ModelError::Load(format!(
            "max_batch_size: '{name}' has no dimensions, so it cannot take a batch; use max_batch_size: 0"
        )));
    }
    Ok(TensorSpec {
        name: name.to_string(),
        datatype,
        dims: rest
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Any(_) => -1,
            })
            .collect(),
    })
}

/// Whether a config.yaml spec agrees with the file; the error names the field.
fn agree(
    at: &str,
    spec: &TensorSpec,
    datatype: DataType,
    file_dims: &[Dim],
    batched: bool,
    max_batch: usize,
) -> Result<(), ModelError> {
    if spec.datatype != datatype {
        return Err(ModelError::Load(format!(
            "{at}.datatype: config.yaml says {}, the model's '{}' is {datatype}",
            spec.datatype, spec.name
        )));
    }
    let rest = if batched {
        match file_dims.first() {
            Some(Dim::Fixed(b)) if !(*b == 1 && max_batch == 1) => {
                return Err(ModelError::Load(format!(
                    "max_batch_size: {max_batch}, but the model's '{}' has a fixed batch dimension of {b} {}",
                    spec.name,
                    show(file_dims)
                )));
            }
            Some(_) => &file_dims[1..],
            None => &[][..],
        }
    } else {
        file_dims
    };
    let fits = rest.len() == spec.dims.len()
        && rest.iter().zip(&spec.dims).all(|(f, c)| match f {
            Dim::Fixed(n) => *c == *n || *c == -1,
            Dim::Any(_) => true,
        });
    if !fits {
        let batch = if batched {
            " after the batch dimension"
        } else {
            ""
        };
        return Err(ModelError::Load(format!(
            "{at}.dims: config.yaml says {:?}, the model's '{}' is {}{batch}",
            spec.dims,
            spec.name,
            show(file_dims)
        )));
    }
    Ok(())
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
