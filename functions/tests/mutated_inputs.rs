//! Damaged copies of real photos (cut short, bytes flipped) through the whole thumbnail path,
//! C decoders included: each must end in a thumbnail or a bad-input error, never a panic or a
//! crash, and a truncated still picture is never thumbnailed (an animation cut after its first
//! frame may still give that frame, which is all a thumbnail uses). Damaged videos go through the
//! keyframes path the same way.

use std::path::Path;

use weir_functions::thumbnail::{Format, Thumbnail, ThumbnailParams};
use weir_functions::{ErrorKind, ExecCtx, Input};

/// A small deterministic generator (xorshift), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn damaged_photos_never_crash_and_truncated_ones_are_refused() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let files = [
        "rocket_640x427.jpg",
        "camera_gray_512x512.jpg",
        "coffee_cmyk_600x400.jpg",
        "chelsea_cat_alpha_451x300.png",
        "chelsea_zoom_animated_240x160.gif",
        "chelsea_zoom_animated_240x160.webp",
        "forest_stream_1280x852.webp",
    ];
    let f = Thumbnail::new(ThumbnailParams::new(vec![64], Format::Jpeg, 80)).unwrap();
    let ctx = ExecCtx::unbounded(1);
    let mut rng = Rng(0x5eed_cafe_f00d_1234);
    for file in files {
        let good = std::fs::read(dir.join(file)).unwrap();
        let animated = file.contains("animated");
        for cut in (1..10).map(|k| good.len() * k / 10) {
            match f.run_one(&Input::new(good[..cut].to_vec()), &ctx, 0) {
                Ok(_) if animated => {}
                Ok(_) => panic!("{file} cut to {cut} bytes was thumbnailed"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::BadInput, "{file} cut at {cut}: {e}"),
            }
        }
        for case in 0..50 {
            let mut bad = good.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() as usize) % bad.len();
                bad[at] ^= 1 << (rng.next() % 8);
            }
            if let Err(e) = f.run_one(&Input::new(bad), &ctx, 0) {
                assert_eq!(
                    e.kind(),
                    ErrorKind::BadInput,
                    "{file} flip case {case}: {e}"
                );
            }
        }
    }
}

/// Damaged copies of the fixture videos (cut short, bytes flipped) through the keyframes path,
/// FFmpeg's demuxers and decoders included: each must end in pictures or a bad-input error —
/// never a panic, a crash, or a decode running into its deadline.
#[test]
fn damaged_videos_never_crash_or_hang() {
    use weir_functions::keyframes::{Keyframes, KeyframesParams, Mode};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/videos");
    let files = [
        "h264_portrait_rot90_360x640.mp4",
        "hevc_720p25_gop50.mp4",
        "vp9_720p25_gop50.webm",
        "av1_320x180_gop50.mkv",
    ];
    let mut params = KeyframesParams::new(Mode::Keyframes);
    params.max_width = Some(64);
    let f = Keyframes::new(params).unwrap();
    let mut rng = Rng(0x0dd_ba11_5eed_0042);
    let run = |bytes: Vec<u8>, what: &str| {
        let mut ctx = ExecCtx::unbounded(1);
        ctx.deadlines[0] = std::time::Instant::now() + std::time::Duration::from_secs(30);
        match f.run_one(&Input::new(bytes), &ctx, 0) {
            Ok(out) => assert!(
                out.summary["frames"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            ),
            Err(e) => assert_eq!(e.kind(), ErrorKind::BadInput, "{what}: {e}"),
        }
    };
    for file in files {
        let good = std::fs::read(dir.join(file)).unwrap();
        for cut in (1..10).map(|k| good.len() * k / 10) {
            run(good[..cut].to_vec(), &format!("{file} cut at {cut}"));
        }
        for case in 0..25 {
            let mut bad = good.clone();
            for _ in 0..1 + rng.next() % 16 {
                let at = (rng.next() as usize) % bad.len();
                bad[at] ^= 1 << (rng.next() % 8);
            }
            run(bad, &format!("{file} flip case {case}"));
        }
    }
}
