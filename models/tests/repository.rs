//! The model repository over real ONNX files: the example repository loads, tract's logits match
//! onnxruntime's golden ones, broken models and wrong configs are reported with reasons while the
//! rest serves, and a failed reload keeps the old version.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weir_models::oip::InferRequest;
use weir_models::{Backends, DataType, Inventory, RepoError, Repository, Tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn open(dir: &Path) -> Repository {
    Repository::open(dir, Backends::tract(), Inventory::cpu_only("tests")).unwrap()
}

/// A scratch repository holding copies of the example models named in `models`.
fn scratch(tag: &str, models: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-repo-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for m in models {
        copy_dir(&root().join("examples/models").join(m), &dir.join(m));
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn golden() -> serde_json::Value {
    let text =
        std::fs::read_to_string(root().join("fixtures/golden/classifier_efficientnet_lite0.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn tract_matches_the_golden_logits_on_the_synthetic_batch() {
    let repo = open(&scratch("golden", &["efficientnet_lite0"]));
    let m = repo.get("efficientnet_lite0", None).unwrap();
    assert_eq!(m.backend, "tract");
    assert_eq!(m.labels.as_ref().unwrap()[0], "tench");
    // x[0,c,h,w] = ((c*50176 + h*224 + w) % 256) / 128 - 1; row 1 all zeros.
    let mut x: Vec<f32> = (0..3 * 224 * 224)
        .map(|i| (i % 256) as f32 / 128.0 - 1.0)
        .collect();
    x.extend(std::iter::repeat_n(0.0, 3 * 224 * 224));
    let input = Tensor::from_f32("input", vec![2, 3, 224, 224], &x);
    let out = m.session.run(&[input]).unwrap();
    assert_eq!(out[0].shape, vec![2, 1000]);
    let logits = out[0].to_f32().unwrap();
    let g = golden();
    let want: Vec<f64> = g["synthetic"]["pattern_logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(want.len(), 1000);
    let worst = want
        .iter()
        .zip(&logits[..1000])
        .map(|(w, l)| (w - *l as f64).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "largest logit difference {worst}");
    // Row 1 (all zeros) ran in the same batch: its first logits are given too.
    if let Some(zeros) = g["synthetic"]
        .get("zeros_logits_first10")
        .and_then(|v| v.as_array())
    {
        assert_eq!(zeros.len(), 10);
        let worst = zeros
            .iter()
            .zip(&logits[1000..])
            .map(|(w, l)| (w.as_f64().unwrap() - *l as f64).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-3, "zeros row: largest logit difference {worst}");
    }
}

#[test]
fn the_example_repository_loads_and_answers_requests() {
    let repo = open(&root().join("examples/models"));
    let index = repo.index();
    let ready: Vec<&str> = index
        .iter()
        .filter(|r| r.state == "READY")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        ready,
        ["efficientnet_lite0", "identity_fp32", "simple"],
        "{index:?}"
    );
    // Triton's quick-start model: sums and differences.
    let m = repo.get("simple", Some("1")).unwrap();
    assert!(!m.runs_inline(), "no run yet: not known to be quick");
    assert!(
        !repo.get("efficientnet_lite0", None).unwrap().runs_inline(),
        "a model with a batcher always goes through it"
    );
    assert_eq!(m.signature.inputs[0].dims, vec![16]);
    assert_eq!(m.signature.inputs[0].datatype, DataType::Int32);
    let a: Vec<u8> = (0..16i32).flat_map(|v| v.to_le_bytes()).collect();
    let b: Vec<u8> = (0..16i32).flat_map(|_| 1i32.to_le_bytes()).collect();
    let req = InferRequest {
        id: None,
        inputs: vec![
            Tensor::new("INPUT1", DataType::Int32, vec![1, 16], b).unwrap(),
            Tensor::new("INPUT0", DataType::Int32, vec![1, 16], a).unwrap(),
        ],
        outputs: vec![],
        binary_default: false,
    };
    let ints = |t: &Tensor| -> Vec<i32> {
        t.data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let out = weir_models::infer::infer(&m, req).unwrap();
    assert_eq!(ints(&out[0].0), (1..17).collect::<Vec<_>>());
    assert_eq!(ints(&out[1].0), (-1..15).collect::<Vec<_>>());
    assert_eq!(m.stats.snapshot("simple", 1).inference_count, 1);
    // Seven rows run as plans of 4, 2 and 1 rows; the outputs come back joined, in order.
    let rows: Vec<i32> = (0..7 * 16).collect();
    let seven = |name: &str, v: &[i32]| {
        Tensor::new(
            name,
            DataType::Int32,
            vec![7, 16],
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
        .unwrap()
    };
    let req = InferRequest {
        id: None,
        inputs: vec![seven("INPUT0", &rows), seven("INPUT1", &rows)],
        outputs: vec![("OUTPUT0".into(), None)],
        binary_default: false,
    };
    let out = weir_models::infer::infer(&m, req).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.shape, vec![7, 16]);
    assert_eq!(
        ints(&out[0].0),
        rows.iter().map(|x| 2 * x).collect::<Vec<_>>()
    );
    // Bad requests name the tensor and what was expected.
    let bad = |inputs: Vec<Tensor>| {
        let req = InferRequest {
            id: None,
            inputs,
            outputs: vec![],
            binary_default: false,
        };
        weir_models::infer::infer(&m, req).unwrap_err().to_string()
    };
    let i32s = |name: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        Tensor::new(name, DataType::Int32, shape, vec![0; n * 4]).unwrap()
    };
    let e = bad(vec![i32s("INPUT0", vec![1, 16])]);
    assert!(e.contains("missing input 'INPUT1'"), "{e}");
    let e = bad(vec![
        i32s("INPUT0", vec![1, 15]),
        i32s("INPUT1", vec![1, 16]),
    ]);
    assert!(e.contains("'INPUT0'") && e.contains("[-1, 16]"), "{e}");
    let e = bad(vec![
        i32s("INPUT0", vec![9, 16]),
        i32s("INPUT1", vec![9, 16]),
    ]);
    assert!(e.contains("1 to 8 rows"), "{e}");
    let e = bad(vec![
        Tensor::from_f32("INPUT0", vec![1, 16], &[0.0; 16]),
        i32s("INPUT1", vec![1, 16]),
    ]);
    assert!(
        e.contains("datatype FP32, but the model expects INT32"),
        "{e}"
    );
    let e = bad(vec![
        i32s("INPUT0", vec![2, 16]),
        i32s("INPUT1", vec![1, 16]),
    ]);
    assert!(e.contains("same batch"), "{e}");
    let e = bad(vec![
        i32s("INPUT0", vec![1, 16]),
        i32s("INPUT9", vec![1, 16]),
    ]);
    assert!(e.contains("unknown input 'INPUT9'"), "{e}");
}

#[test]
fn broken_models_are_reported_and_the_rest_serves() {
    let dir = scratch("broken", &["simple"]);
    for bad in [
        "garbage_random.onnx",
        "truncated_model.onnx",
        "zero_bytes.onnx",
    ] {
        let folder = dir.join(bad.trim_end_matches(".onnx")).join("1");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(
            root().join("fixtures/bad").join(bad),
            folder.join("model.onnx"),
        )
        .unwrap();
        std::fs::write(folder.join("../config.yaml"), "max_batch_size: 4\n").unwrap();
    }
    std::fs::create_dir_all(dir.join("no_versions")).unwrap();
    std::fs::write(dir.join("no_versions/config.yaml"), "max_batch_size: 4\n").unwrap();
    std::fs::create_dir_all(dir.join("bad_config/1")).unwrap();
    std::fs::write(dir.join("bad_config/config.yaml"), "max_batch: 4\n").unwrap();
    let repo = open(&dir);
    assert!(repo.get("simple", None).is_ok());
    let reason = |name: &str| {
        let rows = repo.index();
        let row = rows.iter().find(|r| r.name == name).unwrap();
        assert_eq!(row.state, "UNAVAILABLE", "{row:?}");
        row.reason.clone()
    };
    assert!(reason("zero_bytes").contains("empty (0 bytes)"));
    assert!(reason("garbage_random").contains("not a readable ONNX model"));
    assert!(!reason("truncated_model").is_empty());
    assert!(reason("no_versions").contains("no version folder"));
    let r = reason("bad_config");
    assert!(
        r.contains("config.yaml") && r.contains("unknown field"),
        "{r}"
    );
    match repo.get("zero_bytes", None) {
        Err(RepoError::NotReady { reason, .. }) => assert!(reason.contains("0 bytes")),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a zero-byte model loaded"),
    }
    assert!(matches!(
        repo.get("nope", None),
        Err(RepoError::NotFound(_))
    ));
}

#[test]
fn a_config_that_disagrees_with_the_model_names_the_field() {
    let dir = scratch("disagree", &["simple"]);
    let config = dir.join("simple/config.yaml");
    for (yaml, words) in [
        (
            "max_batch_size: 8\ninputs:\n  - { name: INPUT0, datatype: INT32, dims: [15] }\n",
            "inputs[0].dims",
        ),
        (
            "max_batch_size: 8\ninputs:\n  - { name: INPUT0, datatype: FP32, dims: [16] }\n",
            "inputs[0].datatype",
        ),
        (
            "max_batch_size: 8\ninputs:\n  - { name: INPUT0, datatype: INT32, dims: [16] }\n  - { name: INPUT7, datatype: INT32, dims: [16] }\n",
            "",
        ),
        (
            "max_batch_size: 8\noutputs:\n  - { name: OUT, datatype: INT32, dims: [16] }\n",
            "outputs[0].name",
        ),
        ("max_batch_size: 8\nlabels: missing.txt\n", "labels"),
    ] {
        std::fs::write(&config, yaml).unwrap();
        let repo = open(&dir);
        let row = repo
            .index()
            .into_iter()
            .find(|r| r.name == "simple")
            .unwrap();
        assert_eq!(row.state, "UNAVAILABLE", "{yaml}");
        assert!(row.reason.contains(words), "{yaml}: {}", row.reason);
    }
}

#[test]
fn a_failed_reload_keeps_the_old_version_and_unload_stops_serving() {
    let dir = scratch("reload", &["simple"]);
    let repo = Arc::new(open(&dir));
    let before = repo.get("simple", None).unwrap();
    // A new version whose file is garbage: the reload fails, version 1 keeps serving.
    std::fs::create_dir_all(dir.join("simple/2")).unwrap();
    std::fs::write(dir.join("simple/2/model.onnx"), b"not a model").unwrap();
    let e = repo.load("simple").unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    let after = repo.get("simple", None).unwrap();
    assert_eq!(after.version, 1);
    assert!(Arc::ptr_eq(&before, &after));
    // A good version 2: the reload serves it.
    std::fs::copy(
        dir.join("simple/1/model.onnx"),
        dir.join("simple/2/model.onnx"),
    )
    .unwrap();
    repo.load("simple").unwrap();
    assert_eq!(repo.get("simple", None).unwrap().version, 2);
    repo.unload("simple").unwrap();
    assert!(matches!(
        repo.get("simple", None),
        Err(RepoError::NotReady { .. })
    ));
    let row = repo
        .index()
        .into_iter()
        .find(|r| r.name == "simple")
        .unwrap();
    assert_eq!(
        (row.state, row.reason.as_str()),
        ("UNAVAILABLE", "unloaded")
    );
    repo.load("simple").unwrap();
    assert!(repo.get("simple", None).is_ok());
}

/// Scale to zero: a model unused for the idle time and held by nobody is unloaded, reported as
/// such, and loaded again by the next `get`; one held by a caller, or kept warm, is not.
#[test]
fn an_idle_model_is_unloaded_unless_held_or_kept_warm() {
    let dir = scratch("idle", &["simple", "identity_fp32"]);
    let repo = open(&dir);
    let idle = std::time::Duration::from_millis(20);
    let held = repo.get("simple", None).unwrap();
    std::thread::sleep(idle * 2);
    assert!(!repo.unload_idle("simple", idle), "a caller holds it");
    drop(held);
    assert!(!repo.unload_idle("simple", std::time::Duration::from_secs(60)));
    assert!(repo.unload_idle("simple", idle));
    assert!(!repo.is_loaded("simple") && repo.is_evicted("simple"));
    let row = repo
        .index()
        .into_iter()
        .find(|r| r.name == "simple")
        .unwrap();
    assert!(row.reason.contains("idling"), "{}", row.reason);
    assert!(
        repo.is_servable("simple", None),
        "still servable: the next call loads it"
    );
    assert_eq!(repo.get("simple", None).unwrap().name, "simple");
    assert!(repo.is_loaded("simple"));
    repo.keep_warm("identity_fp32");
    std::thread::sleep(idle * 2);
    assert!(!repo.unload_idle("identity_fp32", idle), "kept warm");
    assert!(!repo.unload_idle("missing", idle));
    let _ = std::fs::remove_dir_all(dir);
}
