//! Triton's own Python client against Weir: `tests/python/triton_client.py` runs with the Python
//! that `./test.sh` prepares (`.venv`, with tritonclient[http], numpy and Pillow), or `WEIR_PYTHON`.
//! The repository is the example one plus the fixtures' broken models.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn repository_with_broken_models() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: PathBuf, to: PathBuf| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    };
    let examples = root().join("examples/models");
    for model in ["efficientnet_lite0", "simple"] {
        for file in ["config.yaml", "1/model.onnx"] {
            copy(
                examples.join(model).join(file),
                dir.path().join(model).join(file),
            );
        }
    }
    copy(
        examples.join("efficientnet_lite0/labels.txt"),
        dir.path().join("efficientnet_lite0/labels.txt"),
    );
    for bad in ["garbage_random", "truncated_model", "zero_bytes"] {
        let folder = dir.path().join(bad);
        copy(
            root().join(format!("fixtures/bad/{bad}.onnx")),
            folder.join("1/model.onnx"),
        );
        std::fs::write(folder.join("config.yaml"), "max_batch_size: 4\n").unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritons_python_client_works_unchanged() {
    let repo = repository_with_broken_models();
    let srv = start(&format!("models: {}\n", repo.path().display())).await;
    let addr = srv.running.http_addr().to_string();
    let script = root().join("pipeline/tests/python/triton_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(venv_python("tritonclient[http], numpy and Pillow"))
            .arg(script)
            .arg(addr)
            .arg(root().join("fixtures/images"))
            .arg(root().join("fixtures/golden/classifier_efficientnet_lite0.json"))
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("synthetic logits within 1e-3"), "{stdout}");
    println!("{stdout}");
}
