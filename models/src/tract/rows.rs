//! How tract runs a batch: one plan compiled for its rows, or its rows one at a time with the
//! one-row plan, spread over idle cores. tract runs a plan on one thread, and a batched plan
//! is not always cheaper per row: EfficientNet-Lite0 costs 30 ms a row alone and 59–70 ms a row in
//! batches of 2–8 on the 2-core development machine (`model-batch-bench`), while a tiny model
//! gains from batching. So each way's cost per row is measured as batches run, each is tried
//! once, and then the cheaper one is taken, the other tried again now and then (a measurement
//! taken while the machine was busy must not decide for good). One row at a time also spreads
//! over idle cores (`crate::spread`), which one batched plan cannot.

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

/// Every this many batches of one size, the way that lost is tried again.
pub const RETRY_EVERY: u64 = 32;

/// The pure choice, from the cost per row seen so far (ns, one thread) of one-row runs and of
/// the batched plan, for the `turn`th batch of this size: an untried way is tried once, then the
/// cheaper one wins (ties to the batched plan: one run, no hand-offs), except that every
/// `RETRY_EVERY`th batch takes the other.
pub fn choose(one: Option<f64>, batched: Option<f64>, turn: u64) -> Way {
    let cheaper = match (one, batched) {
        (None, _) => return Way::OneByOne,
        (Some(_), None) => return Way::Batched,
        (Some(o), Some(b)) if o < b => Way::OneByOne,
        _ => Way::Batched,
    };
    match (turn % RETRY_EVERY == RETRY_EVERY - 1, cheaper) {
        (false, way) => way,
        (true, Way::OneByOne) => Way::Batched,
        (true, Way::Batched) => Way::OneByOne,
    }
}

/// What has been seen of one plan size: its cost per row (ns, on one thread, a moving average
/// of what runs took) and how many batches of that size have run.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    per_row_ns: Option<f64>,
    batches: u64,
}

/// What has been seen, by plan size.
#[derive(Debug, Default)]
pub struct Costs(Mutex<HashMap<usize, Seen>>);

impl Costs {
    fn with<T>(&self, rows: usize, f: impl FnOnce(&mut Seen) -> T) -> T {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(rows).or_default())
    }

    fn get(&self, rows: usize) -> Option<f64> {
        self.with(rows, |s| s.per_row_ns)
    }

    /// The turn of this batch among those of `rows` rows (0 for the first).
    fn turn(&self, rows: usize) -> u64 {
        self.with(rows, |s| {
            s.batches += 1;
            s.batches - 1
        })
    }

    fn record(&self, rows: usize, per_row_ns: f64) {
        self.with(rows, |s| {
            s.per_row_ns = Some(
                s.per_row_ns
                    .map_or(per_row_ns, |c| 0.8 * c + 0.2 * per_row_ns),
            );
        });
    }
}

/// `n` rows (`n` a plan size): whichever way has been cheaper per row.
pub fn run(s: &TractSession, inputs: &[WTensor], n: usize) -> Result<Vec<WTensor>, ModelError> {
    if n == 1 || choose(s.costs.get(1), s.costs.get(n), s.costs.turn(n)) == Way::Batched {
        // Compiled (on first use) before the clock starts: a plan's compile is not its cost.
        let plan = s.plans.plan(n).map_err(ModelError::Run)?;
        let t = Instant::now();
        let out = run_on(&plan, inputs, &s.signature.outputs)?;
        s.costs.record(n, t.elapsed().as_nanos() as f64 / n as f64);
        return Ok(out);
    }
    one_by_one(s, inputs, n)
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
        super::append_rows(&mut joined, out);
    }
    s.costs.record(1, spent / n as f64);
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_is_tried_once_then_the_cheaper_one_runs() {
        assert_eq!(choose(None, None, 0), Way::OneByOne);
        assert_eq!(choose(None, Some(1.0), 5), Way::OneByOne);
        assert_eq!(choose(Some(30.0), None, 1), Way::Batched);
        assert_eq!(choose(Some(30.0), Some(60.0), 2), Way::OneByOne);
        assert_eq!(choose(Some(30.0), Some(3.0), 2), Way::Batched);
        assert_eq!(choose(Some(3.0), Some(3.0), 2), Way::Batched);
    }

    #[test]
    fn the_way_that_lost_is_tried_again_now_and_then() {
        let turns = |one, batched| {
            (0..3 * RETRY_EVERY)
                .filter(|&t| choose(Some(one), Some(batched), t) == Way::Batched)
                .count()
        };
        assert_eq!(turns(30.0, 60.0), 3);
        assert_eq!(turns(60.0, 30.0), 3 * RETRY_EVERY as usize - 3);
    }

    #[test]
    fn costs_follow_what_runs_took() {
        let c = Costs::default();
        assert_eq!(c.get(8), None);
        c.record(8, 100.0);
        c.record(8, 200.0);
        assert_eq!(c.get(8), Some(120.0));
        assert_eq!(c.get(1), None);
        assert_eq!((c.turn(8), c.turn(8), c.turn(2)), (0, 1, 0));
    }
}
