//! tract and onnxruntime give the same answers (within 1e-4) on the example models and the other
//! fixture models, and both match onnxruntime-in-Python's golden logits. Built with `--features ort`; `./test.sh` points
//! ORT_DYLIB_PATH at the library of the PyPI onnxruntime wheel in `.venv`.
#![cfg(feature = "ort")]

mod common;

use common::{max_diff, pattern_and_zeros, root};
use weir_models::{Backends, DataType, Inventory, Repository, Tensor};

fn open(backends: Backends) -> Repository {
    Repository::open(
        &root().join("examples/models"),
        backends,
        Inventory::cpu_only("tests"),
    )
    .unwrap()
}

fn ort() -> Backends {
    Backends::ort().unwrap_or_else(|e| panic!("onnxruntime is needed for this test: {e}"))
}

fn synthetic() -> Tensor {
    Tensor::from_f32("input", vec![2, 3, 224, 224], &pattern_and_zeros())
}

#[test]
fn both_engines_agree_on_every_example_model() {
    let (t, o) = (open(Backends::tract()), open(ort()));
    // The classifier on the golden synthetic batch.
    let run = |r: &Repository| {
        let m = r.get("efficientnet_lite0", None).unwrap();
        m.session.run(&[synthetic()]).unwrap()[0].to_f32().unwrap()
    };
    let (lt, lo) = (run(&t), run(&o));
    let d = max_diff(&lt, &lo);
    assert!(d < 1e-4, "tract and onnxruntime logits differ by {d}");
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/golden/classifier_efficientnet_lite0.json"))
            .unwrap(),
    )
    .unwrap();
    let want: Vec<f32> = golden["synthetic"]["pattern_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(max_diff(&lo[..1000], &want) < 1e-3);
    // Triton's `simple` (INT32) and the identity, three rows each.
    let ints: Vec<u8> = (0..48i32).flat_map(|v| v.to_le_bytes()).collect();
    let a = Tensor::new("INPUT0", DataType::Int32, vec![3, 16], ints.clone()).unwrap();
    let b = Tensor::new("INPUT1", DataType::Int32, vec![3, 16], ints).unwrap();
    let st = t
        .get("simple", None)
        .unwrap()
        .session
        .run(&[a.clone(), b.clone()])
        .unwrap();
    let so = o.get("simple", None).unwrap().session.run(&[a, b]).unwrap();
    assert_eq!(st, so);
    let x = Tensor::from_f32("INPUT0", vec![3, 5], &[0.25; 15]);
    let it = t
        .get("identity_fp32", None)
        .unwrap()
        .session
        .run(std::slice::from_ref(&x))
        .unwrap();
    let io = o
        .get("identity_fp32", None)
        .unwrap()
        .session
        .run(std::slice::from_ref(&x))
        .unwrap();
    assert_eq!(it[0].data, x.data);
    assert_eq!(io[0].data, x.data);
    // Both read the same signature from the files.
    for name in ["efficientnet_lite0", "simple", "identity_fp32"] {
        assert_eq!(
            t.get(name, None).unwrap().signature,
            o.get(name, None).unwrap().signature,
            "{name}"
        );
    }
}

/// Deterministic inputs for a signature: a smooth pattern in 0..1 (times `scale`) for each
/// float input, with `rows` in the batch when the model batches.
fn pattern_inputs(sig: &weir_models::Signature, rows: usize, scale: f32) -> Vec<Tensor> {
    sig.inputs
        .iter()
        .map(|spec| {
            let mut shape: Vec<usize> = spec.dims.iter().map(|d| *d as usize).collect();
            if sig.max_batch_size > 0 {
                shape.insert(0, rows);
            }
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n)
                .map(|i| ((i * 7919 % 1000) as f32 / 1000.0) * scale)
                .collect();
            Tensor::from_f32(spec.name.clone(), shape, &values)
        })
        .collect()
}

/// The other fixture models (`fixtures/models`: CenterFace, the PicoDet layout detector, Silero
/// VAD): every output of both engines within 1e-4 (relative where a value is above 1).
#[test]
fn both_engines_agree_on_the_fixture_models() {
    let open_fixtures = |b: Backends| {
        Repository::open(
            &root().join("fixtures/models"),
            b,
            Inventory::cpu_only("tests"),
        )
        .unwrap()
    };
    let (t, o) = (open_fixtures(Backends::tract()), open_fixtures(ort()));
    for row in t.index().iter().chain(o.index().iter()) {
        assert_eq!(row.state, "READY", "{row:?}");
    }
    // CenterFace takes pixels 0..255; the others values near 0..1.
    for (name, rows, scale) in [
        ("centerface", 2, 255.0),
        ("layout_cdla", 1, 1.0),
        ("silero_vad_16k", 1, 0.5),
    ] {
        let (mt, mo) = (t.get(name, None).unwrap(), o.get(name, None).unwrap());
        assert_eq!(mt.signature, mo.signature, "{name}");
        let inputs = pattern_inputs(&mt.signature, rows, scale);
        let (ot, oo) = (
            mt.session.run(&inputs).unwrap(),
            mo.session.run(&inputs).unwrap(),
        );
        assert_eq!(ot.len(), mo.signature.outputs.len(), "{name}");
        for (a, b) in ot.iter().zip(&oo) {
            assert_eq!((&a.name, &a.shape), (&b.name, &b.shape), "{name}");
            let output = a.name.clone();
            let (a, b) = (a.to_f32().unwrap(), b.to_f32().unwrap());
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
                .fold(0.0, f32::max);
            assert!(worst <= 1e-4, "{name}: outputs differ by {worst}");
            println!("{name} {output}: largest difference {worst:.1e}");
        }
    }
}

#[test]
fn auto_prefers_onnxruntime_and_says_so() {
    let r = open(Backends::available());
    assert_eq!(r.get("efficientnet_lite0", None).unwrap().backend, "ort");
}

#[test]
fn broken_models_fail_cleanly_in_onnxruntime_too() {
    let dir = std::env::temp_dir().join(format!("weir-ort-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for bad in ["garbage_random", "truncated_model", "zero_bytes"] {
        std::fs::create_dir_all(dir.join(bad).join("1")).unwrap();
        std::fs::copy(
            root().join(format!("fixtures/bad/{bad}.onnx")),
            dir.join(bad).join("1/model.onnx"),
        )
        .unwrap();
        std::fs::write(
            dir.join(bad).join("config.yaml"),
            "backend: ort\nmax_batch_size: 4\n",
        )
        .unwrap();
    }
    let r = Repository::open(&dir, ort(), Inventory::cpu_only("tests")).unwrap();
    for row in r.index() {
        assert_eq!(row.state, "UNAVAILABLE", "{row:?}");
        assert!(
            row.reason.contains("onnxruntime cannot load") || row.reason.contains("0 bytes"),
            "{row:?}"
        );
    }
}
