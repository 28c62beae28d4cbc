//! The onnxruntime engine through `ort` (feature `ort`). The library is loaded at run time from
//! `ORT_DYLIB_PATH` (the PyPI wheel ships one); when it cannot load, the reason is kept and tract
//! serves `backend: auto`. A session runs one batch at a time (`run` takes `&mut`), so a model gets
//! `instance_group.count` sessions, each with its share of the cores.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ort::environment::Environment;
use ort::memory::Allocator;
use ort::session::Session as OrtSession;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynTensor, DynTensorValueType, TensorElementType, ValueType};
use weir_gpu::Device;

use crate::backend::{Backend, ModelError, Session, Signature};
use crate::config::ModelConfig;
use crate::facts::{Declared, Dim, reconcile};
use crate::tensor::{DataType, Tensor};

pub struct Ort;

static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's onnxruntime environment, or why there is none.
pub fn environment() -> Result<&'static Environment, String> {
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH").ok_or_else(|| {
            "ORT_DYLIB_PATH is not set (point it at libonnxruntime.so, e.g. from `pip install onnxruntime`)"
                .to_string()
        })?;
        // After a failed load no other ort call may run: it would try to load again and panic.
        let builder = ort::init_from(&path)
            .map_err(|e| format!("cannot load {}: {e}", Path::new(&path).display()))?;
        builder
            .with_name("weir")
            .build()
            .map_err(|e| format!("onnxruntime did not start: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

struct OrtModel {
    /// Intra-op threads per session: the cores one run keeps busy.
    threads: usize,
    sessions: Vec<Mutex<OrtSession>>,
    next: AtomicUsize,
    signature: Signature,
}

impl Backend for Ort {
    fn name(&self) -> &'static str {
        "ort"
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
        let env = environment().map_err(ModelError::Load)?;
        let count = config.instance_group.count;
        let threads = config
            .parameters
            .intra_op_thread_count
            .unwrap_or_else(|| (weir_gpu::cpu_threads() / count).max(1));
        let open = || -> Result<OrtSession, ModelError> {
            let fail =
                |e: String| ModelError::Load(format!("onnxruntime cannot load the model: {e}"));
            OrtSession::builder(env)
                .and_then(|b| Ok(b.with_intra_threads(threads)?))
                .and_then(|b| Ok(b.with_inter_threads(1)?))
                // Spinning intra-op threads keep cores busy between runs, which in a server takes
                // them from request handling, the batcher and the other models.
                .and_then(|b| Ok(b.with_intra_op_spinning(false)?))
                // `All`, as onnxruntime's own default: ort's `Level3` is only ORT_ENABLE_LAYOUT.
                .and_then(|b| Ok(b.with_optimization_level(GraphOptimizationLevel::All)?))
                .and_then(|mut b| b.commit_from_memory(bytes))
                .map_err(|e| fail(e.to_string()))
        };
        let first = open()?;
        let declared = |outlets: &[ort::value::Outlet]| -> Result<Vec<Declared>, ModelError> {
            outlets
                .iter()
                .map(|o| {
                    let ValueType::Tensor {
                        ty,
                        shape,
                        dimension_symbols,
                    } = o.dtype()
                    else {
                        return Err(ModelError::Load(format!("'{}' is not a tensor", o.name())));
                    };
                    let datatype = from_ort(*ty).ok_or_else(|| {
                        ModelError::Load(format!(
                            "'{}': element type {ty} is not supported",
                            o.name()
                        ))
                    })?;
                    let dims = shape
                        .iter()
                        .zip(dimension_symbols.iter())
                        .map(|(d, s)| match d {
                            n if *n >= 0 => Dim::Fixed(*n),
                            _ if s.is_empty() => Dim::Any("?".into()),
                            _ => Dim::Any(s.clone()),
                        })
                        .collect();
                    Ok(Declared {
                        name: o.name().to_string(),
                        datatype,
                        dims,
                    })
                })
                .collect()
        };
        let inputs = reconcile("inputs", &declared(first.inputs())?, config)?;
        let outputs = reconcile("outputs", &declared(first.outputs())?, config)?;
        let mut sessions = vec![Mutex::new(first)];
        for _ in 1..count {
            sessions.push(Mutex::new(open()?));
        }
        Ok(Arc::new(OrtModel {
            threads,
            sessions,
            next: AtomicUsize::new(0),
            signature: Signature {
                max_batch_size: config.max_batch_size,
                inputs,
                outputs,
            },
        }))
    }
}

impl Session for OrtModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn cores(&self) -> usize {
        self.threads
    }

    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
        let mut values = Vec::with_capacity(inputs.len());
        for t in inputs {
            let bad = |e: String| ModelError::BadInput(format!("input '{}': {e}", t.name));
            let ty = to_ort(t.datatype)
                .ok_or_else(|| bad(format!("{} is not supported", t.datatype)))?;
            let shape: Vec<i64> = t.shape.iter().map(|d| *d as i64).collect();
            let mut v =
                DynTensor::new(&Allocator::default(), ty, shape).map_err(|e| bad(e.to_string()))?;
            if v.size() != Some(t.data.len()) {
                return Err(bad(format!(
                    "{} bytes for shape {:?}",
                    t.data.len(),
                    t.shape
                )));
            }
            // Safety: the tensor owns `size()` bytes of CPU memory, checked equal to the data's length.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    t.data.as_ptr(),
                    v.data_ptr_mut().cast::<u8>(),
                    t.data.len(),
                );
            }
            values.push((t.name.clone(), v.into_dyn()));
        }
        // A free instance if there is one, else wait for the next in turn.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        let mut guard = (0..n)
            .find_map(|k| self.sessions[(start + k) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.sessions[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            });
        let out = guard
            .run(values)
            .map_err(|e| ModelError::Run(e.to_string()))?;
        self.signature
            .outputs
            .iter()
            .map(|spec| {
                let run = |m: String| ModelError::Run(format!("output '{}': {m}", spec.name));
                let value = out
                    .get(spec.name.as_str())
                    .ok_or_else(|| run("missing".into()))?;
                let view = value
                    .view()
                    .downcast::<DynTensorValueType>()
                    .map_err(|e| run(e.to_string()))?;
                let datatype =
                    from_ort(*view.data_type()).ok_or_else(|| run("unsupported type".into()))?;
                let shape = view.shape().iter().map(|d| *d as usize).collect();
                let size = view.size().unwrap_or(0);
                // Safety: a CPU tensor of `size` bytes (CPU sessions only, checked at load).
                let data =
                    unsafe { std::slice::from_raw_parts(view.data_ptr().cast::<u8>(), size) }
                        .to_vec();
                Ok(Tensor {
                    name: spec.name.clone(),
                    datatype,
                    shape,
                    data,
                })
            })
            .collect()
    }
}

fn from_ort(t: TensorElementType) -> Option<DataType> {
    Some(match t {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        _ => return None,
    })
}

fn to_ort(t: DataType) -> Option<TensorElementType> {
    Some(match t {
        DataType::Bool => TensorElementType::Bool,
        DataType::Uint8 => TensorElementType::Uint8,
        DataType::Uint16 => TensorElementType::Uint16,
        DataType::Uint32 => TensorElementType::Uint32,
        DataType::Uint64 => TensorElementType::Uint64,
        DataType::Int8 => TensorElementType::Int8,
        DataType::Int16 => TensorElementType::Int16,
        DataType::Int32 => TensorElementType::Int32,
        DataType::Int64 => TensorElementType::Int64,
        DataType::Fp16 => TensorElementType::Float16,
        DataType::Fp32 => TensorElementType::Float32,
        DataType::Fp64 => TensorElementType::Float64,
        DataType::Bytes => return None,
    })
}
