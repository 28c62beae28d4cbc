//! The thumbnail function called directly with real photos: batches on a busy multi-thread pool
//! (work stealing inside the resizer must not break a neighbour), and outputs too large to make.

use std::path::Path;

use weir_functions::thumbnail::{Format, Thumbnail, ThumbnailParams};
use weir_functions::{ErrorKind, ExecCtx, Function, Input};

fn photo(name: &str) -> Input {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(name);
    Input::new(std::fs::read(path).unwrap())
}

#[test]
fn concurrent_batches_on_one_pool_all_succeed() {
    let f = Thumbnail::new(ThumbnailParams::new(vec![256, 1024], Format::Jpeg, 80)).unwrap();
    let names = [
        "mountains_1920x1440.jpg",
        "dogs_exif_orientation6_3088x2048.jpg",
        "document_page_1240x1754.png",
    ];
    let batch: Vec<Input> = names.iter().cycle().take(6).map(|n| photo(n)).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(8)
        .build()
        .unwrap();
    let ctx = ExecCtx::unbounded(batch.len());
    // Several batches at once on the same pool, as several workers run them.
    let results: Vec<_> = pool.install(|| {
        use rayon::prelude::*;
        (0..4)
            .into_par_iter()
            .map(|_| f.call(&batch, &ctx))
            .collect()
    });
    for batch_results in results {
        for (r, name) in batch_results.iter().zip(names.iter().cycle()) {
            let out = r.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(out.artifacts.len(), 2, "{name}");
        }
    }
}

#[test]
fn outputs_beyond_the_format_or_pixel_limit_are_bad_input_not_a_crash() {
    // A 5312x200 strip, upscaled to 16384 wide as WebP: 617 px tall fits, 16384 does not.
    let mut p = ThumbnailParams::new(vec![16_384], Format::Webp, 80);
    p.upscale = true;
    let f = Thumbnail::new(p).unwrap();
    let err = f
        .run_one(
            &photo("dandelions_strip_5312x200.jpg"),
            &ExecCtx::unbounded(1),
            0,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.reason().contains("16383"), "{err}");

    // Portrait photo upscaled so far that the output passes the pixel limit.
    let mut p = ThumbnailParams::new(vec![16_384], Format::Png, 80);
    p.upscale = true;
    p.max_pixels = 50_000_000;
    let f = Thumbnail::new(p).unwrap();
    let err = f
        .run_one(
            &photo("dogs_exif_orientation6_3088x2048.jpg"),
            &ExecCtx::unbounded(1),
            0,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadInput);
    assert!(err.reason().contains("megapixels"), "{err}");
}
