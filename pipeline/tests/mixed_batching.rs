//! Dynamic batching across sources: HTTP infer requests and uploads classified by the same model
//! share batches (the model's statistics count batches that mixed sources), and every caller still
//! gets its own answer: the golden label for each photo, the golden top class for each tensor.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use serde_json::{Value, json};

const PHOTOS: [(&str, &str); 4] = [
    ("coffee_600x400.png", "espresso"),
    ("camera_gray_512x512.jpg", "tripod"),
    ("forest_stream_1280x852.webp", "valley"),
    ("mountains_1920x1440.jpg", "alp"),
];

/// The example classifier, holding each batch open for half a second (up to 32 rows): long
/// enough that an upload's image is decoded and queued while HTTP requests wait, on any machine.
fn repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = root().join("examples/models/efficientnet_lite0");
    let to = dir.path().join("efficientnet_lite0");
    std::fs::create_dir_all(to.join("1")).unwrap();
    std::fs::copy(from.join("1/model.onnx"), to.join("1/model.onnx")).unwrap();
    std::fs::copy(from.join("labels.txt"), to.join("labels.txt")).unwrap();
    let config = std::fs::read_to_string(from.join("config.yaml"))
        .unwrap()
        .replace(
            "dynamic_batching: { preferred_batch_size: [8, 16], max_queue_delay: 2ms }",
            "dynamic_batching: { preferred_batch_size: [8], max_queue_delay: 60ms }",
        );
    assert!(config.contains("60ms"));
    std::fs::write(to.join("config.yaml"), config).unwrap();
    dir
}

fn synthetic_request() -> (Vec<u8>, usize) {
    let head = json!({"inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
        "parameters": {"binary_data_size": 3 * 224 * 224 * 4}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]})
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend((0..3 * 224 * 224).flat_map(|i| ((i % 256) as f32 / 128.0 - 1.0).to_le_bytes()));
    (body, head.len())
}

fn argmax(logits: &[u8]) -> usize {
    let v: Vec<f32> = logits
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (0..v.len()).max_by(|a, b| v[*a].total_cmp(&v[*b])).unwrap()
}

/// One HTTP inference of the synthetic pattern: its golden top class comes back.
async fn call(srv: &TestServer) {
    let (body, n) = synthetic_request();
    let res = srv
        .client
        .post(format!("{}/v2/models/efficientnet_lite0/infer", srv.base))
        .header("Inference-Header-Content-Length", n)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let len: usize = res.headers()["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let bytes = res.bytes().await.unwrap();
    let head: Value = serde_json::from_slice(&bytes[..len]).unwrap();
    assert_eq!(head["outputs"][0]["shape"], json!([1, 1000]));
    // The golden top class of the synthetic pattern (onnxruntime + Pillow).
    assert_eq!(argmax(&bytes[len..]), 904);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_and_uploads_share_batches_and_get_their_own_answers() {
    let repo = repository();
    let srv = start(&format!(
        r#"
models: {}
functions:
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 1 }}
    triggers:
      - s3: {{ bucket: uploads, suffix: [.jpg, .png, .webp] }}
    output: {{ bucket: derived, key: "labels/{{key}}.json" }}
    resources: {{ batch: {{ max_size: 1 }}, timeout: 60s }}
"#,
        repo.path().display()
    ))
    .await;
    let srv = Arc::new(srv);
    // HTTP callers arrive every 20 ms without waiting for answers (at most 12 in flight, below the
    // test server's connection limit), until the uploads are done, so that requests from both
    // sources are waiting whenever the model takes a batch.
    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (srv, done, answered) = (srv.clone(), done.clone(), answered.clone());
        tokio::spawn(async move {
            let mut calls = Vec::new();
            let in_flight = Arc::new(AtomicUsize::new(0));
            while !done.load(Ordering::Relaxed) || calls.len() < 8 {
                if in_flight.load(Ordering::Relaxed) < 12 {
                    in_flight.fetch_add(1, Ordering::Relaxed);
                    let (srv, answered, in_flight) =
                        (srv.clone(), answered.clone(), in_flight.clone());
                    calls.push(tokio::spawn(async move {
                        call(&srv).await;
                        answered.fetch_add(1, Ordering::Relaxed);
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                    }));
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            for c in calls {
                c.await.unwrap();
            }
        })
    };
    // Once HTTP requests are flowing, uploads (twice each photo) through the webhook: from then
    // on every batch window holds HTTP requests for an upload to join.
    until("HTTP callers answered", async || {
        (answered.load(Ordering::Relaxed) >= 1).then_some(())
    })
    .await;
    let store = srv.running.store().unwrap().clone();
    let mut records = Vec::new();
    for round in 0..2 {
        for (photo, _) in PHOTOS {
            let key = format!("r{round}/{photo}");
            store
                .put("uploads", &key, &fixture(&format!("images/{photo}")))
                .unwrap();
            records.push(s3_record("aws:s3", &key));
        }
    }
    assert_eq!(srv.notify(&records).await.status(), 200);
    for round in 0..2 {
        for (photo, label) in PHOTOS {
            let key = format!("labels/r{round}/{photo}.json");
            let bytes = until(&key, async || store.get("derived", &key, 1 << 20).ok()).await;
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["labels"][0]["label"], label, "{photo}: {v}");
        }
    }
    done.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    assert!(answered.load(Ordering::Relaxed) >= 8);
    let stats = srv.json("/v2/models/efficientnet_lite0/stats").await;
    let s = &stats["model_stats"][0];
    assert!(
        s["mixed_source_batches"].as_u64().unwrap() >= 1,
        "no batch held both an HTTP request and an upload: {s}"
    );
    let biggest = s["batch_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["batch_size"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(biggest >= 2, "{s}");
    let metrics = metrics_text(&srv.client, &srv.base).await;
    assert!(
        metrics.contains("weir_model_batch_size_bucket{model=\"efficientnet_lite0\""),
        "the batch-size histogram per model is missing"
    );
}
