//! How tract runs a batch: one plan compiled for its rows, or its rows one at a time with the
//! one-row plan, spread over idle cores. tract runs a plan on one thread, and a batched plan
//! is not always cheaper per row: EfficientNet-Lite0 costs 30 ms a row alone and 59–70 ms a row in
//! batches of 2–8 on the 2-core development machine (`model-batch-bench`), while a tiny model
//! gains from batching. So each way's cost per row is measured as batches run, each is tried
//! once, and then the cheaper one is taken. One row at a time also spreads over idle cores
//! (`crate::spread`), which one batched plan cannot.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{TractSession, run_on};
use crate::backend::ModelError;
use crate::cores::Cores;
use crate::spread::{Helpers, Piece};
use crate::tensor::Tensor as WTensor;

/// How to run `n` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// One run of the plan compiled for `n` rows.
    Batched,
    /// `n` runs of the one-row plan.
    OneByOne,
}

/// The pure choice, from the cost per row seen so far (ns, one thread) of one-row runs and of
/// the batched plan: an untried way is tried once, then the cheaper one wins (ties to the
/// batched plan: one run, no hand-offs).
pub fn choose(one: Option<f64>, batched: Option<f64>) -> Way {
    match (one, batched) {
        (None, _) => Way::OneByOne,
        (Some(_), None) => Way::Batched,
        (Some(o), Some(b)) if o < b => Way::OneByOne,
        _ => Way::Batched,
    }
}

/// Cost per row (ns, on one thread) by plan size, a moving average of what runs took.
#[derive(Debug, Default)]
pub struct Costs(Mutex<HashMap<usize, f64>>);

impl Costs {
    fn get(&self, rows: usize) -> Option<f64> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&rows)
            .copied()
    }

    fn record(&self, rows: usize, per_row_ns: f64) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.entry(rows)
            .and_modify(|c| *c = 0.8 * *c + 0.2 * per_row_ns)
            .or_insert(per_row_ns);
    }
}

/// `n` rows (`n` a plan size): whichever way has been cheaper per row.
pub fn run(s: &TractSession, inputs: Vec<WTensor>, n: usize) -> Result<Vec<WTensor>, ModelError> {
    if n == 1 || choose(s.costs.get(1), s.costs.get(n)) == Way::Batched {
        let t = Instant::now();
        let out = s.run_plan(&inputs, n)?;
        s.costs.record(n, t.elapsed().as_nanos() as f64 / n as f64);
        return Ok(out);
    }
    one_by_one(s, &inputs, n)
}

/// Each row with the one-row plan, on this thread and on idle cores; outputs joined in order.
fn one_by_one(s: &TractSession, inputs: &[WTensor], n: usize) -> Result<Vec<WTensor>, ModelError> {
    let plan = s.plans.plan(1).map_err(ModelError::Run)?;
    type Ran = Result<(Vec<WTensor>, f64), ModelError>;
    let pieces: Vec<Piece<Ran>> = (0..n)
        .map(|r| {
            let row: Vec<WTensor> = inputs.iter().map(|t| super::rows_of(t, r, 1)).collect();
            let (plan, outputs) = (plan.clone(), s.signature.outputs.clone());
            Box::new(move || {
                let t = Instant::now();
                let out = run_on(&plan, &row, &outputs)?;
                Ok((out, t.elapsed().as_nanos() as f64))
            }) as Piece<Ran>
        })
        .collect();
    let help = Helpers::take_pieces(Cores::machine(), n);
    let mut joined: Vec<WTensor> = Vec::new();
    let mut spent = 0.0;
    for ran in help.run(pieces) {
        let (out, ns) = ran?;
        spent += ns;
        if joined.is_empty() {
            joined = out;
        } else {
            for (j, o) in joined.iter_mut().zip(out) {
                j.shape[0] += o.shape.first().copied().unwrap_or(0);
                j.data.extend_from_slice(&o.data);
            }
        }
    }
    s.costs.record(1, spent / n as f64);
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_is_tried_once_then_the_cheaper_one_runs() {
        assert_eq!(choose(None, None), Way::OneByOne);
        assert_eq!(choose(None, Some(1.0)), Way::OneByOne);
        assert_eq!(choose(Some(30.0), None), Way::Batched);
        assert_eq!(choose(Some(30.0), Some(60.0)), Way::OneByOne);
        assert_eq!(choose(Some(30.0), Some(3.0)), Way::Batched);
        assert_eq!(choose(Some(3.0), Some(3.0)), Way::Batched);
    }

    #[test]
    fn costs_follow_what_runs_took() {
        let c = Costs::default();
        assert_eq!(c.get(8), None);
        c.record(8, 100.0);
        c.record(8, 200.0);
        assert_eq!(c.get(8), Some(120.0));
        assert_eq!(c.get(1), None);
    }
}
