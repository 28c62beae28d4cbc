//! `kind: process` with a second runtime in another language: a handler built on AWS's Rust
//! runtime (`lambda_runtime`, examples/lambda/rust), which the workspace build makes.

mod common;

use std::path::PathBuf;

use common::{s3_client, wait_for};
use serde_json::{Value, json};

/// `weir-lambda-rust`, beside this test's own build (`cargo build --workspace` makes it).
fn handler_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let bin = dir.join("weir-lambda-rust");
    assert!(
        bin.exists(),
        "{} is missing: build the workspace first (cargo build --workspace; ./test.sh does)",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_lambda_runtime_handler_reads_uploads_and_answers_calls() {
    let yaml = format!(
        "functions:\n  - name: sizes\n    kind: process\n    params: {{ command: [{}] }}\n    triggers:\n      - s3: {{ bucket: uploads, prefix: rust/ }}\n      - http: {{ path: /sizes }}\n    output: {{ bucket: derived, key: \"sizes/{{key}}.json\" }}\n    resources:\n      workers: {{ max: 1 }}\n      batch: {{ max_size: 4, max_delay: 200ms }}\n      timeout: 20s\n",
        handler_binary().display()
    );
    let srv = common::start(&yaml).await;
    let s3 = s3_client(&srv, "test-secret-key");
    let keys = ["rust/a b.bin", "rust/ü.bin", "rust/c.bin"];
    for (i, key) in keys.iter().enumerate() {
        s3.put_object()
            .bucket("uploads")
            .key(*key)
            .body(vec![7u8; 1000 * (i + 1)].into())
            .send()
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        let made = wait_for(&s3, "derived", &format!("sizes/{key}.json")).await;
        let made: Value = serde_json::from_slice(&made).unwrap();
        assert_eq!(made["runtime"], "rust");
        assert_eq!(made["sizes"][key], json!(1000 * (i + 1)), "{made}");
    }
    let call = |body: Value| {
        srv.client
            .post(format!("{}/sizes", srv.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let res = call(json!({ "hello": "rust" })).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let v = common::body_json(res).await;
    assert_eq!(v["event"]["hello"], "rust");
    assert_eq!(v["request_id"].as_str().unwrap().len(), 36);
    let res = call(json!({ "fail": "asked to fail" })).await.unwrap();
    assert_eq!(res.status().as_u16(), 500);
    let v = common::body_json(res).await;
    assert!(
        v["error"].as_str().unwrap().contains("asked to fail"),
        "{v}"
    );
    // The process stays warm after a handler error.
    let res = call(json!({})).await.unwrap();
    assert_eq!(common::body_json(res).await["runtime"], "rust");
    // Every answered invocation's time in the process is recorded (Lambda's "Duration"): the
    // three calls, the error among them, and the uploads in one to three batches.
    let text = common::metrics_text(&srv.client, &srv.base).await;
    let held = |name: &str| common::metric(&text, name, "function=\"sizes\"").unwrap_or(0.0);
    let count = held("weir_process_duration_seconds_count");
    assert!((4.0..=6.0).contains(&count), "{count} durations\n{text}");
    let sum = held("weir_process_duration_seconds_sum");
    assert!(sum > 0.0 && sum < count * 20.0, "{sum} s in all");
}
