//! The seam between the repository and an inference engine: load a model file for a device,
//! report what it takes and gives, run a batch of named tensors.

use std::sync::Arc;

use weir_gpu::Device;

use crate::config::{BackendChoice, ModelConfig, TensorSpec};
use crate::tensor::Tensor;

/// What a loaded model takes and gives, after its config was checked against the file (or
/// completed from it). Dims exclude the batch dimension when `max_batch_size > 0`.
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub max_batch_size: usize,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

impl Signature {
    /// The full shape a request's tensor must have, with its batch of `rows` (if batched).
    pub fn accepts(&self, spec: &TensorSpec, shape: &[usize]) -> Result<(), String> {
        let batched = self.max_batch_size > 0;
        let dims = if batched {
            match shape.split_first() {
                Some((rows, rest)) if *rows >= 1 && *rows <= self.max_batch_size => rest,
                Some((rows, _)) => {
                    return Err(format!(
                        "input '{}': a batch of {rows}, but the model takes 1 to {} rows",
                        spec.name, self.max_batch_size
                    ));
                }
                None => &[][..],
            }
        } else {
            shape
        };
        let fits = dims.len() == spec.dims.len()
            && dims
                .iter()
                .zip(&spec.dims)
                .all(|(d, want)| *want == -1 || *d as i64 == *want);
        if fits && (!batched || !shape.is_empty()) {
            return Ok(());
        }
        let mut want: Vec<String> = spec
            .dims
            .iter()
            .map(|d| if *d == -1 { "-1".into() } else { d.to_string() })
            .collect();
        if batched {
            want.insert(0, "-1".into());
        }
        Err(format!(
            "input '{}': shape {shape:?}, but the model expects [{}]",
            spec.name,
            want.join(", ")
        ))
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ModelError {
    /// The file cannot be loaded, or disagrees with its config. Names the field where it can.
    #[error("{0}")]
    Load(String),
    /// The request does not fit the model (shape, datatype, byte size, unknown tensor).
    #[error("{0}")]
    BadInput(String),
    /// The engine failed on a well-formed request.
    #[error("inference failed: {0}")]
    Run(String),
    /// The model's queue is full: could not schedule (429), nothing ran.
    #[error("{0}")]
    Overloaded(String),
}

/// A loaded model, ready to run batches; shared by every worker (`run` takes `&self`).
pub trait Session: Send + Sync {
    fn signature(&self) -> &Signature;
    /// Run one batch. `inputs` are in the signature's order with their full shapes (batch first
    /// when batched); outputs come back in the signature's order.
    fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError>;
    /// CPU cores one run keeps busy (its engine's threads), for `cores::Cores`.
    fn cores(&self) -> usize {
        1
    }
}

/// An inference engine.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether it can run on a CUDA device (placement refuses `cuda` otherwise).
    fn gpu_capable(&self) -> bool;
    /// Prepare a model from the bytes of its `model.onnx` (read, and checked not empty, by the
    /// repository) for `device`, which placement already matched to `gpu_capable`.
    fn load(
        &self,
        onnx: &[u8],
        config: &ModelConfig,
        device: Device,
    ) -> Result<Arc<dyn Session>, ModelError>;
}

/// The engines compiled in and usable, in order of preference for `backend: auto`, and why any
/// compiled-in engine is not usable.
#[derive(Clone)]
pub struct Backends {
    engines: Vec<Arc<dyn Backend>>,
    missing: Vec<(&'static str, String)>,
}

impl Backends {
    /// Every engine this build has that can run here: onnxruntime first when it is compiled in
    /// and its library loads, tract always.
    pub fn available() -> Backends {
        #[allow(unused_mut)]
        let mut b = Backends::tract();
        #[cfg(feature = "ort")]
        match crate::onnxruntime::environment() {
            Ok(_) => b.engines.insert(0, Arc::new(crate::onnxruntime::Ort)),
            Err(reason) => {
                tracing::warn!(%reason, "onnxruntime is compiled in but not available; tract serves backend: auto");
                b.missing.push(("ort", reason));
            }
        }
        b
    }

    /// tract alone.
    pub fn tract() -> Backends {
        Backends {
            engines: vec![Arc::new(crate::tract::Tract)],
            missing: vec![],
        }
    }

    /// onnxruntime alone, or why it cannot run.
    #[cfg(feature = "ort")]
    pub fn ort() -> Result<Backends, String> {
        crate::onnxruntime::environment()?;
        Ok(Backends {
            engines: vec![Arc::new(crate::onnxruntime::Ort)],
            missing: vec![],
        })
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.engines.iter().map(|b| b.name()).collect()
    }

    pub fn choose(&self, choice: BackendChoice) -> Result<Arc<dyn Backend>, ModelError> {
        let found = match choice {
            BackendChoice::Auto => self.engines.first(),
            other => self.engines.iter().find(|b| b.name() == other.name()),
        };
        found.cloned().ok_or_else(|| {
            let why = self
                .missing
                .iter()
                .find(|(n, _)| *n == choice.name())
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| {
                    format!(
                        "it is not compiled into this build (build with --features {})",
                        choice.name()
                    )
                });
            ModelError::Load(format!(
                "backend: {} cannot be used: {why}; this server has: {}",
                choice.name(),
                self.names().join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::DataType;

    fn sig(max_batch_size: usize, dims: Vec<i64>) -> (Signature, TensorSpec) {
        let spec = TensorSpec {
            name: "input".into(),
            datatype: DataType::Fp32,
            dims,
        };
        let s = Signature {
            max_batch_size,
            inputs: vec![spec.clone()],
            outputs: vec![],
        };
        (s, spec)
    }

    #[test]
    fn shapes_are_checked_with_and_without_a_batch_dimension() {
        let (s, spec) = sig(8, vec![3, 224, 224]);
        assert!(s.accepts(&spec, &[1, 3, 224, 224]).is_ok());
        assert!(s.accepts(&spec, &[8, 3, 224, 224]).is_ok());
        let e = s.accepts(&spec, &[9, 3, 224, 224]).unwrap_err();
        assert!(e.contains("1 to 8 rows"), "{e}");
        let e = s.accepts(&spec, &[1, 3, 224, 225]).unwrap_err();
        assert!(
            e.contains("[-1, 3, 224, 224]") && e.contains("'input'"),
            "{e}"
        );
        assert!(s.accepts(&spec, &[3, 224, 224]).is_err());
        assert!(s.accepts(&spec, &[]).is_err());
        let (s, spec) = sig(0, vec![-1, 4]);
        assert!(s.accepts(&spec, &[7, 4]).is_ok());
        assert!(s.accepts(&spec, &[7, 5]).is_err());
    }
}
