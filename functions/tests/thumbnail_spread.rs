//! One thumbnail spread over idle cores: the same bytes as on a busy machine, and strips of a
//! resize that join into the whole resize without a seam.

use std::path::Path;

use weir_functions::thumbnail::{
    Allowance, Format, Thumbnail, ThumbnailParams, decode, shrink, shrink_rows, stored_size,
};
use weir_functions::{Early, ExecCtx, Input};
use weir_models::cores::Cores;

fn photo(name: &str) -> Input {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/images")
        .join(name);
    Input::new(std::fs::read(path).unwrap())
}

const PHOTOS: [&str; 4] = [
    "mountains_1920x1440.jpg",
    "dogs_exif_orientation6_3088x2048.jpg",
    "document_page_1240x1754.png",
    "dandelions_5312x2988.jpg",
];

#[test]
fn idle_cores_make_the_same_thumbnails_as_a_busy_machine() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let f = Thumbnail::new(ThumbnailParams::new(vec![256, 1024, 700], Format::Jpeg, 80)).unwrap();
    let idle = Cores::leaked(4);
    let busy = Cores::leaked(4);
    let _all_taken = busy.take(4);
    for name in PHOTOS {
        let input = photo(name);
        let run = |cores: &'static Cores| {
            let ctx = ExecCtx {
                cores,
                ..ExecCtx::unbounded(1)
            };
            pool.install(|| f.run_one(&input, &ctx, 0))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let (spread, alone) = (run(idle), run(busy));
        assert_eq!(spread.artifacts.len(), 3, "{name}");
        for (a, b) in spread.artifacts.iter().zip(&alone.artifacts) {
            assert_eq!(a.name, b.name);
            assert!(
                a.bytes == b.bytes,
                "{name} {}: other bytes on idle cores",
                a.name
            );
        }
        assert_eq!(spread.summary, alone.summary, "{name}");
        assert_eq!(idle.free(), 4, "{name}: every helper gave its core back");
    }
}

#[test]
fn sizes_are_handed_on_as_they_are_made_smallest_first_and_a_full_channel_keeps_the_rest() {
    let f = Thumbnail::new(ThumbnailParams::new(vec![1024, 256, 700], Format::Jpeg, 80)).unwrap();
    // No idle core: one thread makes every size, in a fixed order.
    let busy = Cores::leaked(1);
    let _taken = busy.take(1);
    let ctx = ExecCtx {
        cores: busy,
        ..ExecCtx::unbounded(1)
    };
    let plain = f.run_one(&photo(PHOTOS[0]), &ctx, 0).unwrap();
    // Room for every size: all handed on, none left in the output, the summary unchanged.
    let (early, mut handed) = Early::channel(8);
    let mut input = photo(PHOTOS[0]);
    input.early = Some(early);
    let out = f.run_one(&input, &ctx, 0).unwrap();
    assert!(out.artifacts.is_empty(), "every size was handed on");
    assert_eq!(out.summary, plain.summary);
    let mut got = Vec::new();
    while let Ok(a) = handed.try_recv() {
        got.push(a);
    }
    let names: Vec<&str> = got.iter().map(|a| a.name.as_str()).collect();
    // Made largest first (the smaller ones come from it), handed on smaller ones first: on one
    // core the 1024 is encoded after the others are out.
    assert_eq!(names, ["700.jpg", "256.jpg", "1024.jpg"]);
    for a in &got {
        let same = plain.artifacts.iter().find(|p| p.name == a.name).unwrap();
        assert!(
            a.bytes == same.bytes,
            "{}: other bytes when handed on",
            a.name
        );
    }
    // Room for one: the first is handed on, the others stay in the output, in its order.
    let (early, mut handed) = Early::channel(1);
    input.early = Some(early);
    let out = f.run_one(&input, &ctx, 0).unwrap();
    assert_eq!(handed.try_recv().unwrap().name, "700.jpg");
    let kept: Vec<&str> = out.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(kept, ["1024.jpg", "256.jpg"]);
    // Nobody listening: a closed channel keeps everything.
    handed.close();
    let out = f.run_one(&input, &ctx, 0).unwrap();
    assert_eq!(out.artifacts, plain.artifacts);
}

#[test]
fn strips_of_a_resize_join_without_a_seam() {
    for name in PHOTOS {
        let pic = decode(
            &photo(name).bytes,
            &Allowance::pixels(100_000_000),
            Some(1024),
        )
        .unwrap();
        let displayed = weir_functions::thumbnail::target_size(pic.displayed(), 1024, false);
        let mut r = fast_image_resize::Resizer::new();
        let whole = shrink(
            &mut r,
            &pic,
            displayed,
            fast_image_resize::FilterType::Lanczos3,
        )
        .unwrap();
        let (w, h) = stored_size(&pic, displayed);
        for cuts in [2, 3, 5, 8] {
            let mut joined = Vec::new();
            for s in 0..cuts {
                let rows = h * s / cuts..h * (s + 1) / cuts;
                let filter = fast_image_resize::FilterType::Lanczos3;
                joined.extend(shrink_rows(&mut r, &pic, (w, h), rows, filter).unwrap());
            }
            // Equal, not close: the output must not depend on how many cores were idle.
            assert!(
                joined == whole.pixels,
                "{name}: {cuts} strips differ from the whole resize"
            );
        }
    }
}

/// The resizer's fixed-point precision follows the largest filter weight of a pass, and a strip
/// holds only some of the rows' weights, so a strip may round one level apart from the whole
/// (which is why the cut follows the size, never the load). Sweep many scales (downscales by 1.1
/// to 6, where the largest weight crosses ½ near 2) on grey and colour pictures, for 2 to 8
/// strips: never more than one level apart.
#[test]
fn strips_stay_within_one_level_of_the_whole_resize_over_a_sweep_of_scales() {
    use image::ImageFormat;
    use image::metadata::Orientation;
    use weir_functions::thumbnail::{Layout, Picture};
    let filter = fast_image_resize::FilterType::Lanczos3;
    let mut r = fast_image_resize::Resizer::new();
    let mut seed = 0x9e37_79b9_u32;
    let mut checked = 0;
    for layout in [Layout::Gray, Layout::Rgb] {
        for src_h in [300u32, 769, 1440, 2047] {
            let w = 48u32;
            let pixels: Vec<u8> = (0..w as usize * src_h as usize * layout.channels())
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed >> 24) as u8
                })
                .collect();
            let pic = Picture {
                width: w,
                height: src_h,
                layout,
                pixels,
                orientation: Orientation::NoTransforms,
                format: ImageFormat::Png,
                full: (w, src_h),
                exact: (f64::from(w), f64::from(src_h)),
                held: None,
            };
            let mut h = src_h * 10 / 11;
            while h >= (src_h / 6).max(64) {
                let whole = shrink(&mut r, &pic, (w, h), filter).unwrap().pixels;
                for cuts in 2..=(h / 32).min(8) {
                    let mut joined = Vec::with_capacity(whole.len());
                    for s in 0..cuts {
                        let rows = h * s / cuts..h * (s + 1) / cuts;
                        joined.extend(shrink_rows(&mut r, &pic, (w, h), rows, filter).unwrap());
                    }
                    let worst = joined.iter().zip(&whole).map(|(a, b)| a.abs_diff(*b)).max();
                    assert!(
                        joined.len() == whole.len() && worst <= Some(1),
                        "{layout:?} {src_h} rows to {h} in {cuts} strips: {worst:?} levels apart"
                    );
                    checked += 1;
                }
                h -= 1 + h / 40;
            }
        }
    }
    assert!(checked > 500, "{checked} cuts checked");
}
