//! The thumbnail function called directly with real photos: batches on a busy multi-thread pool
//! (work stealing inside the resizer must not break a neighbour), and outputs too large to make.

use std::path::Path;

use weir_functions::thumbnail::{Allowance, Format, Thumbnail, ThumbnailParams};
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

#[test]
fn jpeg_and_webp_shrink_while_decoding_and_keep_the_full_size_for_layout() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images/dandelions_5312x2988.jpg"),
    )
    .unwrap();
    // 5312 -> 256 is a shrink of 20.8: decoded at 1/8, the rest left to Lanczos.
    let pic = weir_functions::thumbnail::decode(&bytes, &Allowance::pixels(100_000_000), Some(256))
        .unwrap();
    assert_eq!((pic.width, pic.height), (664, 374));
    assert_eq!(pic.full, (5312, 2988));
    assert_eq!(pic.exact, (664.0, 373.5));
    // For 1024 (a shrink of 5.2) only 1/2; with no hint the whole picture.
    let pic =
        weir_functions::thumbnail::decode(&bytes, &Allowance::pixels(100_000_000), Some(1024))
            .unwrap();
    assert_eq!((pic.width, pic.height), (2656, 1494));
    let pic =
        weir_functions::thumbnail::decode(&bytes, &Allowance::pixels(100_000_000), None).unwrap();
    assert_eq!((pic.width, pic.height), (5312, 2988));

    // The dogs are stored sideways: the shrink is judged on the displayed width (2048).
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/images/dogs_exif_orientation6_3088x2048.jpg"),
    )
    .unwrap();
    let pic = weir_functions::thumbnail::decode(&bytes, &Allowance::pixels(100_000_000), Some(256))
        .unwrap();
    assert_eq!(
        (pic.width, pic.height),
        (772, 512),
        "1/4 for a shrink of exactly 8"
    );
    assert_eq!(pic.displayed(), (2048, 3088));

    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/images/forest_stream_1280x852.webp"),
    )
    .unwrap();
    let pic = weir_functions::thumbnail::decode(&bytes, &Allowance::pixels(100_000_000), Some(256))
        .unwrap();
    assert_eq!(
        (pic.width, pic.height),
        (512, 341),
        "libwebp scales to twice the target"
    );
    assert_eq!(pic.full, (1280, 852));
}

#[test]
fn every_size_is_right_whatever_the_order_and_spacing_of_sizes() {
    // 600 is not twice 400, so 400 comes from the decode; 128 may come from 400.
    let f = Thumbnail::new(ThumbnailParams::new(vec![400, 128, 600], Format::Png, 80)).unwrap();
    let out = f
        .run_one(&photo("mountains_1920x1440.jpg"), &ExecCtx::unbounded(1), 0)
        .unwrap();
    let names: Vec<&str> = out.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["400.png", "128.png", "600.png"],
        "artifacts keep the order asked for"
    );
    for (a, w) in out.artifacts.iter().zip([400, 128, 600]) {
        let img = image::load_from_memory(&a.bytes).unwrap();
        assert_eq!((img.width(), img.height()), (w, w * 3 / 4), "{}", a.name);
    }
}
