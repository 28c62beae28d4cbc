//! Helpers shared by the model tests.

use std::path::{Path, PathBuf};

/// The workspace root (examples/ and fixtures/ live there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The largest absolute difference between two equally long vectors.
pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Two 3×224×224 rows: the golden pattern (`fixtures/golden/classifier_efficientnet_lite0.json`'s
/// "synthetic") and zeros.
pub fn pattern_and_zeros() -> Vec<f32> {
    let mut x: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| (i % 256) as f32 / 128.0 - 1.0)
        .collect();
    x.extend(std::iter::repeat_n(0.0, 3 * 224 * 224));
    x
}
