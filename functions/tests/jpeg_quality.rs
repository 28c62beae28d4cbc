//! JPEG output quality: at the same settings, libjpeg-turbo's encoder (the fast path) must match
//! the `image` crate's encoder (the slow path it replaced), measured as PSNR on identical pixels.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use weir_functions::thumbnail::{Chroma, Format, Thumbnail, ThumbnailParams};
use weir_functions::{ExecCtx, Input};

fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    weir_functions::thumbnail::psnr(a, b).expect("equal sizes")
}

#[test]
fn the_fast_encoder_matches_the_slow_one_at_the_same_settings() {
    let refs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/reference");
    for stem in [
        "mountains_1920x1440",
        "dogs_exif_orientation6_3088x2048",
        "coffee_600x400",
        "forest_stream_1280x852",
    ] {
        let png = std::fs::read(refs.join(format!("{stem}_256.png"))).unwrap();
        let pixels = image::load_from_memory(&png).unwrap().to_rgb8();
        // Slow path: image's encoder at q80 (it does not subsample chroma).
        let mut slow = Vec::new();
        JpegEncoder::new_with_quality(&mut slow, 80)
            .encode_image(&pixels)
            .unwrap();
        let slow_db = psnr(&image::load_from_memory(&slow).unwrap().to_rgb8(), &pixels);
        // Fast path through the function: the picture is already 256 wide, so only encoding acts.
        let db = |chroma| {
            let mut p = ThumbnailParams::new(vec![256], Format::Jpeg, 80);
            p.chroma = chroma;
            let out = Thumbnail::new(p)
                .unwrap()
                .run_one(&Input::new(png.clone()), &ExecCtx::unbounded(1), 0)
                .unwrap();
            psnr(
                &image::load_from_memory(&out.artifacts[0].bytes)
                    .unwrap()
                    .to_rgb8(),
                &pixels,
            )
        };
        let (full, sub) = (db(Chroma::Full444), db(Chroma::Sub420));
        assert!(
            full >= slow_db - 0.3,
            "{stem}: 4:4:4 {full:.2} dB against the slow path's {slow_db:.2} dB"
        );
        assert!(
            sub < full,
            "{stem}: 4:2:0 should trade some colour detail ({sub:.2} vs {full:.2} dB)"
        );
        eprintln!("{stem}: slow {slow_db:.2} dB, fast 4:4:4 {full:.2} dB, fast 4:2:0 {sub:.2} dB");
    }
}
