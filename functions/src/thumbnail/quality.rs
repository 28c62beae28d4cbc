//! The quality measure the tests and benchmarks share.

use image::RgbImage;

/// Peak signal-to-noise ratio of two same-sized RGB images, in dB (infinite when identical).
/// `None` when the sizes differ.
pub fn psnr(a: &RgbImage, b: &RgbImage) -> Option<f64> {
    if a.dimensions() != b.dimensions() {
        return None;
    }
    let se: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let mse = se / a.as_raw().len().max(1) as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_differences() {
        let a = RgbImage::from_raw(1, 2, vec![0, 0, 0, 0, 0, 0]).unwrap();
        let b = RgbImage::from_raw(1, 2, vec![255, 255, 255, 0, 0, 0]).unwrap();
        // Half the samples off by 255: MSE = 255²/2, so 10·log10(2) ≈ 3.01 dB.
        assert!((psnr(&a, &b).unwrap() - 3.0103).abs() < 1e-3);
        assert_eq!(psnr(&a, &a), Some(f64::INFINITY));
        assert_eq!(psnr(&a, &RgbImage::new(2, 1)), None);
    }
}
