//! The model memory budget over what models really take once loaded. One test in its own binary:
//! the figures are the process's resident memory, which tests running beside it would blur.

use std::path::{Path, PathBuf};

use weir_models::budget::Budget;
use weir_models::{Backends, Inventory, Repository};

const MIB: u64 = 1 << 20;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A scratch repository with a copy of the unfolding model (182 bytes on disk, 64 MiB of weights
/// once loaded) under each name.
fn scratch(tag: &str, names: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-memory-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let from = root().join("fixtures/unfolding/unfolding_64mib");
    for n in names {
        std::fs::create_dir_all(dir.join(n).join("1")).unwrap();
        std::fs::copy(from.join("config.yaml"), dir.join(n).join("config.yaml")).unwrap();
        std::fs::copy(from.join("1/model.onnx"), dir.join(n).join("1/model.onnx")).unwrap();
    }
    dir
}

/// What one copy is counted as taking, with `backends`.
fn footprint(backends: Backends) -> u64 {
    let dir = scratch("one", &["m"]);
    let repo = Repository::open(&dir, backends, Inventory::cpu_only("tests")).unwrap();
    let bytes = repo.get("m", None).unwrap().bytes;
    let _ = std::fs::remove_dir_all(dir);
    bytes
}

#[test]
fn the_budget_counts_what_models_take_once_loaded() {
    let file = std::fs::metadata(root().join("fixtures/unfolding/unfolding_64mib/1/model.onnx"))
        .unwrap()
        .len();
    assert!(file < 1024, "{file}");
    // Counted as the memory it took, not as its file.
    let one = footprint(Backends::tract());
    assert!(
        (64 * MIB..256 * MIB).contains(&one),
        "tract: {} MiB",
        one / MIB
    );
    #[cfg(feature = "ort")]
    {
        let ort = Backends::ort().unwrap_or_else(|e| panic!("onnxruntime is needed: {e}"));
        let o = footprint(ort);
        assert!((64 * MIB..256 * MIB).contains(&o), "ort: {} MiB", o / MIB);
    }

    // Three copies under a budget just short of three times the weights: each copy takes at least
    // its 64 MiB, so three never fit, and two fit while each takes under 95 MiB.
    let dir = scratch("budget", &["a", "b", "c"]);
    let repo = Repository::open_with_budget(
        &dir,
        Backends::tract(),
        Inventory::cpu_only("tests"),
        Budget::every(3 * 64 * MIB - MIB),
    )
    .unwrap();
    let state = |name: &str| {
        let rows = repo.index();
        let row = rows.iter().find(|r| r.name == name).unwrap();
        (row.state, row.reason.clone())
    };
    // Loaded in order a, b, c: loading c pushed out a, the least recently used.
    assert_eq!(state("a").0, "UNAVAILABLE");
    assert!(state("a").1.contains("memory budget"), "{:?}", state("a"));
    assert_eq!((state("b").0, state("c").0), ("READY", "READY"));
    // Asking whether a is ready neither loads it nor counts as a use.
    assert!(repo.is_servable("a", None) && repo.is_servable("b", None));
    assert!(!repo.is_servable("zzz", None));
    assert_eq!(state("a").0, "UNAVAILABLE");
    // Use b, then ask for a: a loads again and c (now the oldest idle) goes.
    std::thread::sleep(std::time::Duration::from_millis(5));
    repo.get("b", None).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let a = repo.get("a", None).unwrap();
    assert_eq!(a.name, "a");
    assert!(a.bytes >= 64 * MIB, "a reload is counted too: {}", a.bytes);
    assert_eq!(
        (state("a").0, state("b").0, state("c").0),
        ("READY", "READY", "UNAVAILABLE")
    );
    // A model in use is never unloaded: hold a and b, then ask for c.
    let b = repo.get("b", None).unwrap();
    repo.get("c", None).unwrap();
    assert_eq!(
        (state("a").0, state("b").0, state("c").0),
        ("READY", "READY", "READY")
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir);
}
