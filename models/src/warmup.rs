//! Warm-up: one batch of zeros through a freshly loaded model, so the first real request does not
//! pay for lazy set-up, and a model that loads but cannot run is caught at load.

use crate::backend::{ModelError, Session};
use crate::tensor::Tensor;

pub fn run(session: &dyn Session) -> Result<(), ModelError> {
    let sig = session.signature();
    let inputs: Vec<Tensor> = sig
        .inputs
        .iter()
        .map(|spec| {
            let mut shape: Vec<usize> = spec.dims.iter().map(|d| (*d).max(1) as usize).collect();
            if sig.max_batch_size > 0 {
                shape.insert(0, 1);
            }
            let size = spec.datatype.size().unwrap_or(1);
            let n = Tensor::elements(&shape).unwrap_or(0) * size;
            Tensor {
                name: spec.name.clone(),
                datatype: spec.datatype,
                shape,
                data: vec![0; n],
            }
        })
        .collect();
    session
        .run(&inputs)
        .map(drop)
        .map_err(|e| ModelError::Load(format!("warmup: {e}")))
}
