//! tract runs a batch either with the plan compiled for its rows or one row at a time (spread
//! over idle cores), whichever has been cheaper (`tract/rows.rs`); both ways must give the same
//! answers as each row run alone.

mod common;

use common::{max_diff, pattern_and_zeros, root};
use weir_models::{Backends, DataType, Inventory, Repository, Tensor};

#[test]
fn both_ways_of_running_a_batch_give_the_same_answers() {
    let repo = Repository::open(
        &root().join("examples/models"),
        Backends::tract(),
        Inventory::cpu_only("tests"),
    )
    .unwrap();
    // Two rows: the golden pattern and zeros. The first runs explore both ways, the later ones
    // take the cheaper; every answer is the same.
    let x = pattern_and_zeros();
    let batch = Tensor::from_f32("input", vec![2, 3, 224, 224], &x);
    let m = repo.get("efficientnet_lite0", None).unwrap();
    let runs: Vec<Vec<f32>> = (0..4)
        .map(|_| {
            m.session.run(std::slice::from_ref(&batch)).unwrap()[0]
                .to_f32()
                .unwrap()
        })
        .collect();
    for r in &runs[1..] {
        assert!(max_diff(&runs[0], r) < 1e-4);
    }
    // The same as each row alone (whose logits `repository.rs` checks against the golden ones).
    let alone: Vec<f32> = [&x[..3 * 224 * 224], &x[3 * 224 * 224..]]
        .iter()
        .flat_map(|row| {
            let t = Tensor::from_f32("input", vec![1, 3, 224, 224], row);
            m.session.run(&[t]).unwrap()[0].to_f32().unwrap()
        })
        .collect();
    for r in &runs {
        assert!(max_diff(r, &alone) < 1e-4);
    }
    // A tiny model, where batching pays, gives its input back either way, rows in order.
    let values: Vec<f32> = (0..8 * 16).map(|v| v as f32).collect();
    let rows = Tensor::from_f32("INPUT0", vec![8, 16], &values);
    let id = repo.get("identity_fp32", None).unwrap();
    for _ in 0..4 {
        let out = id.session.run(std::slice::from_ref(&rows)).unwrap();
        assert_eq!(out[0].shape, vec![8, 16]);
        assert_eq!(out[0].datatype, DataType::Fp32);
        assert_eq!(out[0].to_f32().unwrap(), values);
    }
}
