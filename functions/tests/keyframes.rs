//! The keyframes function on the fixture videos, against the timestamps ffprobe lists
//! (`fixtures/golden/videos.json`) and the cuts the videos were made with
//! (`fixtures/golden/video_scenes.json`), and on the hostile videos.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use weir_functions::keyframes::{Keyframes, KeyframesParams, Mode};
use weir_functions::{Early, ErrorKind, ExecCtx, FileSource, Input, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join("golden").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn streamed(rel: &str) -> Input {
    // Read through `Source::read_at`, as the object store gives it: never read whole.
    let f = std::fs::File::open(fixtures().join(rel)).unwrap();
    Input::streamed(std::sync::Arc::new(FileSource::new(f).unwrap()))
}

fn run(params: KeyframesParams, input: &Input) -> Result<Output, weir_functions::FnError> {
    Keyframes::new(params)
        .unwrap()
        .run_one(input, &ExecCtx::unbounded(1), 0)
}

fn pts(out: &Output) -> Vec<f64> {
    out.summary["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts"].as_f64().unwrap())
        .collect()
}

#[test]
fn key_frames_match_ffprobe_and_decode_at_the_displayed_size() {
    for v in golden("videos.json")["videos"].as_array().unwrap() {
        let file = v["file"].as_str().unwrap();
        let out = run(KeyframesParams::new(Mode::Keyframes), &streamed(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let want: Vec<f64> = serde_json::from_value(v["keyframe_pts_time"].clone()).unwrap();
        assert_eq!(pts(&out), want, "{file}");
        let m = &out.summary;
        let shown = &v["displayed_width_height"];
        assert_eq!(
            (&m["width"], &m["height"]),
            (&shown[0], &shown[1]),
            "{file}"
        );
        assert_eq!(m["codec"], v["codec"], "{file}");
        assert_eq!(m["fps"].as_f64(), v["fps"].as_f64(), "{file}");
        assert!((m["duration"].as_f64().unwrap() - v["duration_s"].as_f64().unwrap()).abs() < 0.05);
        assert_eq!(m["truncated"], false, "{file}");
        let pictures: Vec<_> = out
            .artifacts
            .iter()
            .filter(|a| a.name.ends_with(".jpg"))
            .collect();
        assert_eq!(pictures.len(), want.len(), "{file}");
        for (a, f) in pictures.iter().zip(m["frames"].as_array().unwrap()) {
            let img = image::load_from_memory(&a.bytes).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (
                    shown[0].as_u64().unwrap() as u32,
                    shown[1].as_u64().unwrap() as u32
                ),
                "{file} {}",
                a.name
            );
            assert_eq!(
                (f["width"].as_u64(), f["key"].as_bool()),
                (Some(img.width() as u64), Some(true))
            );
            assert_eq!(
                a.vars["pts_ms"],
                format!("{}", (f["pts"].as_f64().unwrap() * 1000.0).round())
            );
        }
        let manifest = out
            .artifacts
            .iter()
            .find(|a| a.name == "manifest.json")
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&manifest.bytes).unwrap(),
            out.summary
        );
    }
}

/// The containers and codec this repository adds (MOV, MKV, AV1; `tools/make_video_fixtures.sh`).
#[test]
fn mov_mkv_and_av1_give_their_key_frames() {
    for v in golden("videos_local.json")["videos"].as_array().unwrap() {
        let file = v["file"].as_str().unwrap();
        let out = run(KeyframesParams::new(Mode::Keyframes), &streamed(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let want: Vec<f64> = serde_json::from_value(v["keyframe_pts_time"].clone()).unwrap();
        assert_eq!(pts(&out), want, "{file}");
        assert_eq!(out.summary["codec"], v["codec"], "{file}");
        let rotated = file.contains("rot90");
        let (w, h) = (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap());
        let shown = if rotated { (h, w) } else { (w, h) };
        assert_eq!(
            (
                out.summary["width"].as_u64().unwrap(),
                out.summary["height"].as_u64().unwrap()
            ),
            shown,
            "{file}"
        );
    }
}

#[test]
fn a_portrait_video_is_turned_upright() {
    let mut p = KeyframesParams::new(Mode::Keyframes);
    p.max_width = Some(180);
    let out = run(p, &streamed("videos/h264_portrait_rot90_360x640.mp4")).unwrap();
    assert_eq!(out.summary["rotation"], 90);
    let first = out.artifacts.iter().find(|a| a.name == "0.jpg").unwrap();
    let img = image::load_from_memory(&first.bytes).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (180, 320));
    // The ffmpeg CLI's own upright first frame (it applies the display matrix): turned the wrong
    // way, the picture would not resemble it at all.
    let path = fixtures().join("reference/h264_portrait_rot90_first_frame_180x320.png");
    let reference = image::open(path).unwrap().to_rgb8();
    let mse: f64 = img
        .as_raw()
        .iter()
        .zip(reference.as_raw())
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum::<f64>()
        / img.as_raw().len() as f64;
    let psnr = 10.0 * (255.0f64.powi(2) / mse).log10();
    assert!(
        psnr > 30.0,
        "PSNR {psnr:.1} dB against ffmpeg's upright frame"
    );
}

#[test]
fn bytes_and_streams_give_the_same_manifest() {
    let rel = "videos/vp9_720p25_gop50.webm";
    let mut p = KeyframesParams::new(Mode::Keyframes);
    p.max_width = Some(320);
    let bytes = std::fs::read(fixtures().join(rel)).unwrap();
    let a = run(p.clone(), &Input::new(bytes)).unwrap();
    let b = run(p, &streamed(rel)).unwrap();
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.summary["frames"][0]["width"], 320);
    assert_eq!(a.summary["frames"][0]["height"], 180);
}

/// Cut times of the videos that have cuts, with their frame rate.
#[test]
fn pictures_are_handed_on_as_they_are_encoded_and_the_manifest_stays_in_the_output() {
    let file = "videos/h264_720p24_gop48_aac.mp4";
    let plain = run(KeyframesParams::new(Mode::Keyframes), &streamed(file)).unwrap();
    let (early, mut handed) = Early::channel(64);
    let mut input = streamed(file);
    input.early = Some(early);
    let out = run(KeyframesParams::new(Mode::Keyframes), &input).unwrap();
    let names =
        |a: &[weir_functions::Artifact]| a.iter().map(|a| a.name.clone()).collect::<Vec<_>>();
    // The manifest is what is left, so where outputs are written it comes after every picture.
    assert_eq!(names(&out.artifacts), ["manifest.json"]);
    assert_eq!(out.summary, plain.summary);
    let mut got = Vec::new();
    while let Ok(a) = handed.try_recv() {
        got.push(a);
    }
    got.sort_by_key(|a| a.vars["index"].parse::<usize>().unwrap());
    assert_eq!(
        names(&got),
        names(&plain.artifacts[1..]),
        "every picture, once"
    );
    for (a, b) in got.iter().zip(&plain.artifacts[1..]) {
        assert_eq!((&a.vars, &a.content_type), (&b.vars, &b.content_type));
        assert!(a.bytes == b.bytes, "{}: other bytes when handed on", a.name);
    }
}

fn cuts() -> Vec<(String, f64, Vec<f64>)> {
    let scenes = golden("video_scenes.json");
    let mut out = Vec::new();
    for (name, v) in scenes["videos"].as_object().unwrap() {
        let times: Vec<f64> = v["cuts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["time_s"].as_f64().unwrap())
            .collect();
        if !times.is_empty() {
            out.push((format!("videos/{name}"), v["fps"].as_f64().unwrap(), times));
        }
    }
    out
}

#[test]
fn scene_mode_finds_every_cut_within_a_frame() {
    for (file, fps, times) in cuts() {
        let mut p = KeyframesParams::new(Mode::Scene(0.1));
        p.max_width = Some(160);
        let out = run(p, &streamed(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = pts(&out);
        assert_eq!(
            got[0], 0.0,
            "{file}: the first frame starts the first scene"
        );
        assert_eq!(
            got.len() - 1,
            times.len(),
            "{file}: {got:?} vs cuts {times:?}"
        );
        for (g, t) in got[1..].iter().zip(&times) {
            assert!((g - t).abs() <= 1.0 / fps + 1e-6, "{file}: {g} vs cut {t}");
        }
    }
}

#[test]
fn interval_mode_lands_on_each_point_within_a_frame() {
    for (file, fps, times) in cuts() {
        // The cuts of these videos are evenly spaced from the start in two of them; ask for
        // frames at each cut's time directly where they are.
        let every = times[0];
        let mut p = KeyframesParams::new(Mode::Interval(Duration::from_secs_f64(every)));
        p.max_width = Some(160);
        let out = run(p, &streamed(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got = pts(&out);
        let duration = out.summary["duration"].as_f64().unwrap();
        let points: Vec<f64> = (0..)
            .map(|k| k as f64 * every)
            .take_while(|t| *t < duration - 0.5 / fps)
            .collect();
        assert_eq!(got.len(), points.len(), "{file}: {got:?} for every {every}");
        for (g, t) in got.iter().zip(&points) {
            assert!(
                *g >= t - 0.5 / fps && g - t <= 1.0 / fps,
                "{file}: {g} for {t}"
            );
        }
    }
}

#[test]
fn hostile_videos_fail_with_a_reason() {
    for (file, says) in [
        ("bad/mp4_claims_15360x15360.mp4", "15360x15360"),
        ("bad/mp4_claims_65520x65520.mp4", "65520x65520"),
        ("bad/mp4_truncated_no_moov.mp4", "not a video"),
        ("bad/zero_bytes.mp4", "empty"),
        ("bad/garbage_random.mp4", "not a video"),
        ("bad/audio_only.m4a", "no video stream"),
        ("bad/webm_truncated_10pct.webm", "truncated"),
        ("images/rocket_640x427.jpg", "a still image"),
    ] {
        let e = match run(KeyframesParams::new(Mode::Keyframes), &streamed(file)) {
            Ok(out) => panic!("{file}: gave {}", out.summary),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::BadInput, "{file}: {e}");
        assert!(e.reason().contains(says), "{file}: {e}");
    }
}

#[test]
fn a_video_cut_in_its_data_gives_the_frames_before_the_cut() {
    // The first half of the 3 s portrait video: its index is whole, its data stops inside the
    // key frame at 1 s (ffprobe: "partial file" at offset 0xa8dd).
    let out = run(
        KeyframesParams::new(Mode::Keyframes),
        &streamed("bad/mp4_truncated_mid_mdat.mp4"),
    )
    .unwrap();
    assert_eq!(out.summary["truncated"], true);
    assert_eq!(pts(&out), vec![0.0]);
}

#[test]
fn limits_refuse_before_decoding_and_cap_the_frames() {
    let mut p = KeyframesParams::new(Mode::Keyframes);
    p.max_duration = Duration::from_secs(5);
    let e = run(p, &streamed("videos/h264_720p24_gop48_aac.mp4")).unwrap_err();
    assert!(e.reason().contains("lasts 10.0 s"), "{e}");
    let mut p = KeyframesParams::new(Mode::Keyframes);
    p.max_pixels = 1280 * 720 - 1;
    let e = run(p, &streamed("videos/h264_720p24_gop48_aac.mp4")).unwrap_err();
    assert!(e.reason().contains("1280x720"), "{e}");
    let mut p = KeyframesParams::new(Mode::Interval(Duration::from_millis(100)));
    p.max_frames = 3;
    p.max_width = Some(64);
    let out = run(p, &streamed("videos/h264_720p24_gop48_aac.mp4")).unwrap();
    assert_eq!(pts(&out).len(), 3);
    assert_eq!(out.summary["capped"], true);
}

#[test]
fn a_decode_past_its_deadline_stops_as_a_timeout() {
    let f = Keyframes::new(KeyframesParams::new(Mode::Scene(0.1))).unwrap();
    let mut ctx = ExecCtx::unbounded(1);
    ctx.deadlines[0] = std::time::Instant::now() + Duration::from_millis(30);
    let e = f
        .run_one(&streamed("videos/h264_1080p30_scenecut.mp4"), &ctx, 0)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

/// `device: cuda:0` gives the CPU's key frames: on a machine without a GPU (or an FFmpeg without
/// NVDEC for the codec) because it decodes on the CPU, said in the log; on a GPU machine through
/// NVDEC, with the same manifest and pictures within 40 dB PSNR of the CPU's (H.264 and HEVC
/// decode bit-exactly; the host copy is NV12 where the CPU decoder gives planar 4:2:0, so the
/// colour conversion may round apart).
#[test]
fn a_cuda_device_gives_the_cpus_key_frames() {
    let mut gpu_ctx = ExecCtx::unbounded(1);
    gpu_ctx.device = weir_gpu::Device::Cuda(0);
    for v in golden("videos.json")["videos"].as_array().unwrap() {
        let file = v["file"].as_str().unwrap();
        let p = KeyframesParams::new(Mode::Keyframes);
        let k = Keyframes::new(p).unwrap();
        let cpu = k
            .run_one(&streamed(file), &ExecCtx::unbounded(1), 0)
            .unwrap();
        let gpu = k
            .run_one(&streamed(file), &gpu_ctx, 0)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(gpu.summary, cpu.summary, "{file}");
        for (a, b) in cpu.artifacts.iter().zip(&gpu.artifacts) {
            if a.bytes == b.bytes {
                continue;
            }
            let a = image::load_from_memory(&a.bytes).unwrap().to_rgb8();
            let b = image::load_from_memory(&b.bytes).unwrap().to_rgb8();
            let db = weir_functions::thumbnail::psnr(&a, &b).unwrap();
            assert!(db >= 40.0, "{file}: {db:.1} dB");
        }
    }
}
