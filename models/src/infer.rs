//! One inference request against a loaded model: inputs checked against its signature (by name,
//! datatype, shape and batch), one run (through the model's dynamic batcher when it has one), the
//! outputs asked for, statistics recorded.

use std::time::Instant;

use crate::backend::{ModelError, Signature};
use crate::oip::InferRequest;
use crate::repository::LoadedModel;
use crate::stats::RequestTimes;
use crate::tensor::Tensor;

/// A request checked against its model, ready to run.
pub struct Prepared {
    /// The inputs in the signature's order.
    pub inputs: Vec<Tensor>,
    /// Output indices wanted, each with whether it goes back as binary data.
    wanted: Vec<(usize, bool)>,
    pub rows: usize,
    started: Instant,
}

/// Check `req` against `model`'s signature.
pub fn prepare(model: &LoadedModel, req: InferRequest) -> Result<Prepared, ModelError> {
    let started = Instant::now();
    let sig = &model.signature;
    let wanted = wanted_outputs(sig, &req)?;
    let inputs = order_inputs(sig, req.inputs)?;
    let rows = if sig.max_batch_size > 0 {
        inputs
            .first()
            .and_then(|t| t.shape.first())
            .copied()
            .unwrap_or(1)
    } else {
        1
    };
    Ok(Prepared {
        inputs,
        wanted,
        rows,
        started,
    })
}

impl Prepared {
    /// Counts the request from `arrived` (when its first byte came) rather than from its check.
    pub fn since(mut self, arrived: Instant) -> Self {
        self.started = arrived;
        self
    }

    /// The outputs asked for from a run's outputs, and the request's statistics.
    pub fn finish(
        self,
        model: &LoadedModel,
        outputs: Result<Vec<Tensor>, ModelError>,
    ) -> Result<Vec<(Tensor, bool)>, ModelError> {
        let result = outputs.and_then(|outputs| {
            let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
            self.wanted
                .iter()
                .map(|(index, binary)| {
                    let t = outputs
                        .get_mut(*index)
                        .and_then(Option::take)
                        .ok_or_else(|| {
                            ModelError::Run(format!("the engine returned no output {index}"))
                        })?;
                    Ok((t, *binary))
                })
                .collect()
        });
        model.stats.request(
            self.rows,
            RequestTimes {
                ok: result.is_ok(),
                total: self.started.elapsed(),
            },
        );
        result
    }
}

/// Run `req` on `model`, blocking; outputs come back with whether each is wanted as binary data.
pub fn infer(model: &LoadedModel, req: InferRequest) -> Result<Vec<(Tensor, bool)>, ModelError> {
    let mut p = prepare(model, req)?;
    let inputs = std::mem::take(&mut p.inputs);
    let outputs = model.run_blocking(inputs, "infer");
    p.finish(model, outputs)
}

/// Indices of the outputs asked for (all when none are named), each with its binary flag.
fn wanted_outputs(sig: &Signature, req: &InferRequest) -> Result<Vec<(usize, bool)>, ModelError> {
    if req.outputs.is_empty() {
        return Ok((0..sig.outputs.len())
            .map(|i| (i, req.binary_default))
            .collect());
    }
    req.outputs
        .iter()
        .map(|(name, binary)| {
            let i = sig
                .outputs
                .iter()
                .position(|o| &o.name == name)
                .ok_or_else(|| {
                    let have: Vec<&str> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
                    ModelError::BadInput(format!(
                        "unknown output '{name}' (the model gives: {})",
                        have.join(", ")
                    ))
                })?;
            Ok((i, binary.unwrap_or(req.binary_default)))
        })
        .collect()
}

/// The request's tensors in the signature's order, each checked; every input's batch agrees.
pub fn order_inputs(sig: &Signature, mut given: Vec<Tensor>) -> Result<Vec<Tensor>, ModelError> {
    let names: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
    if let Some(t) = given.iter().find(|t| !names.contains(&t.name.as_str())) {
        return Err(ModelError::BadInput(format!(
            "unknown input '{}' (the model takes: {})",
            t.name,
            names.join(", ")
        )));
    }
    let mut ordered = Vec::with_capacity(sig.inputs.len());
    for spec in &sig.inputs {
        let at = given
            .iter()
            .position(|t| t.name == spec.name)
            .ok_or_else(|| ModelError::BadInput(format!("missing input '{}'", spec.name)))?;
        let t = given.swap_remove(at);
        if t.datatype != spec.datatype {
            return Err(ModelError::BadInput(format!(
                "input '{}': datatype {}, but the model expects {}",
                t.name, t.datatype, spec.datatype
            )));
        }
        sig.accepts(spec, &t.shape).map_err(ModelError::BadInput)?;
        ordered.push(t);
    }
    if !given.is_empty() {
        return Err(ModelError::BadInput(format!(
            "input '{}' given twice",
            given[0].name
        )));
    }
    if sig.max_batch_size > 0
        && let Some(first) = ordered.first()
        && let Some(t) = ordered.iter().find(|t| t.shape[0] != first.shape[0])
    {
        return Err(ModelError::BadInput(format!(
            "input '{}' has a batch of {}, but '{}' has {}: every input needs the same batch",
            t.name, t.shape[0], first.name, first.shape[0]
        )));
    }
    Ok(ordered)
}
