//! The Open Inference Protocol over HTTP against the example model repository: metadata and
//! config in Triton's shapes, JSON and binary tensors, errors with the right status naming the
//! tensor, the repository API; and `classify` giving the golden labels, over HTTP and on uploads.

mod common;

use common::*;
use serde_json::{Value, json};

fn config() -> String {
    format!(
        r#"
models: {}
functions:
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 3 }}
    triggers:
      - s3: {{ bucket: uploads, suffix: [.jpg, .jpeg, .png, .webp] }}
    output: {{ bucket: derived, key: "labels/{{key}}.json" }}
    resources: {{ batch: {{ max_size: 8, max_delay: 5ms }}, timeout: 60s }}
"#,
        root().join("examples/models").display()
    )
}

async fn post(
    srv: &TestServer,
    path: &str,
    body: Vec<u8>,
    header_length: Option<usize>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = srv.client.post(format!("{}{path}", srv.base)).body(body);
    if let Some(n) = header_length {
        req = req.header("Inference-Header-Content-Length", n);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.unwrap().to_vec())
}

async fn status(srv: &TestServer, path: &str) -> u16 {
    srv.client
        .get(format!("{}{path}", srv.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triton_shaped_metadata_config_and_json_inference() {
    let srv = start(&config()).await;
    assert_eq!(srv.json("/v2").await["extensions"][0], "model_repository");
    assert_eq!(status(&srv, "/v2/health/live").await, 200);
    assert_eq!(status(&srv, "/v2/health/ready").await, 200);
    assert_eq!(status(&srv, "/v2/models/simple/ready").await, 200);
    assert_eq!(
        status(&srv, "/v2/models/simple/versions/1/ready").await,
        200
    );
    assert_eq!(status(&srv, "/v2/models/nope/ready").await, 400);

    let meta = srv.json("/v2/models/simple").await;
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["inputs"][0],
        json!({"name": "INPUT0", "datatype": "INT32", "shape": [-1, 16]})
    );
    let cfg = srv.json("/v2/models/efficientnet_lite0/config").await;
    assert_eq!(cfg["max_batch_size"], 32);
    assert_eq!(cfg["input"][0]["dims"], json!([3, 224, 224]));
    assert_eq!(cfg["input"][0]["data_type"], "TYPE_FP32");
    assert_eq!(cfg["output"][0]["label_filename"], "labels.txt");
    assert_eq!(
        cfg["dynamic_batching"]["preferred_batch_size"],
        json!([8, 16])
    );
    assert_eq!(
        cfg["dynamic_batching"]["max_queue_delay_microseconds"],
        2000
    );
    assert_eq!(cfg["instance_group"][0]["kind"], "KIND_CPU");

    // JSON tensors, nested data, no Content-Type (as Triton's Python client sends them).
    let a: Vec<i32> = (0..16).collect();
    let body = json!({"id": "r1", "inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [a]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]}]});
    let (code, headers, bytes) = post(
        &srv,
        "/v2/models/simple/infer",
        body.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        (
            v["id"].as_str(),
            v["model_name"].as_str(),
            v["model_version"].as_str()
        ),
        (Some("r1"), Some("simple"), Some("1"))
    );
    assert_eq!(ints(&v["outputs"][0]["data"]), (1..17).collect::<Vec<_>>());
    assert_eq!(ints(&v["outputs"][1]["data"]), (-1..15).collect::<Vec<_>>());
    assert_eq!(v["outputs"][0]["shape"], json!([1, 16]));

    let stats = srv.json("/v2/models/simple/stats").await;
    let s = &stats["model_stats"][0];
    assert_eq!(
        (s["name"].as_str(), s["version"].as_str()),
        (Some("simple"), Some("1"))
    );
    assert_eq!(s["inference_stats"]["success"]["count"], 1);
    assert_eq!(s["batch_stats"][0]["batch_size"], 1);
    // What the model is counted as taking, as Triton reports it: at least its file.
    let file = std::fs::metadata(root().join("examples/models/simple/1/model.onnx"))
        .unwrap()
        .len();
    assert_eq!(s["memory_usage"][0]["type"], "CPU");
    assert!(s["memory_usage"][0]["byte_size"].as_u64().unwrap() >= file);
    assert!(
        srv.json("/v2/models/stats").await["model_stats"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_and_bad_requests() {
    let srv = start(&config()).await;
    // Binary in, one output binary and one JSON.
    let head = json!({"inputs": [
        {"name": "INPUT0", "shape": [2, 16], "datatype": "INT32", "parameters": {"binary_data_size": 128}},
        {"name": "INPUT1", "shape": [2, 16], "datatype": "INT32", "parameters": {"binary_data_size": 128}}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}, {"name": "OUTPUT1", "parameters": {"binary_data": false}}]})
    .to_string();
    let mut body = head.clone().into_bytes();
    body.extend((0..32i32).flat_map(|v| v.to_le_bytes()));
    body.extend((0..32i32).flat_map(|_| 2i32.to_le_bytes()));
    let (code, headers, bytes) = post(
        &srv,
        "/v2/models/simple/infer",
        body.clone(),
        Some(head.len()),
    )
    .await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/octet-stream");
    let n: usize = headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes[..n]).unwrap();
    assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 128);
    let sums: Vec<i32> = bytes[n..]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(sums, (2..34).collect::<Vec<_>>());
    assert_eq!(ints(&v["outputs"][1]["data"]), (-2..30).collect::<Vec<_>>());

    // Bad requests: 400 naming the tensor; unknown model 404.
    let truncated = body[..body.len() - 5].to_vec();
    let (code, _, bytes) = post(&srv, "/v2/models/simple/infer", truncated, Some(head.len())).await;
    let e: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code, 400);
    assert!(e["error"].as_str().unwrap().contains("INPUT1"), "{e}");
    for (body, words) in [
        (
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 15], "datatype": "INT32", "data": vec![0; 15]},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]}]}),
            "input 'INPUT0': shape [1, 15], but the model expects [-1, 16]",
        ),
        (
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": vec![0.5; 16]},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]}]}),
            "input 'INPUT0': datatype FP32, but the model expects INT32",
        ),
        (
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 12]}]}),
            "input 'INPUT0': 48 bytes of data",
        ),
        (
            json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]}], "outputs": [{"name": "OUT9"}]}),
            "unknown output 'OUT9'",
        ),
    ] {
        let (code, _, bytes) = post(
            &srv,
            "/v2/models/simple/infer",
            body.to_string().into_bytes(),
            None,
        )
        .await;
        let e: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(code, 400, "{e}");
        assert!(
            e["error"].as_str().unwrap().contains(words),
            "{e} should say {words}"
        );
    }
    let (code, _, bytes) = post(&srv, "/v2/models/simple/infer", b"{not json".to_vec(), None).await;
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&bytes));
    let (code, _, bytes) = post(&srv, "/v2/models/nope/infer", b"{}".to_vec(), None).await;
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&bytes).contains("unknown model: 'nope'"));
    assert_eq!(status(&srv, "/v2/models/simple/versions/7").await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_api_unloads_and_loads() {
    let srv = start(&config()).await;
    let (code, _, bytes) = post(&srv, "/v2/repository/index", vec![], None).await;
    assert_eq!(code, 200);
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(
        index
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &json!({"name": "simple", "version": "1", "state": "READY"})),
        "{index}"
    );
    let (code, _, _) = post(
        &srv,
        "/v2/repository/models/simple/unload",
        br#"{"parameters":{"unload_dependents":false}}"#.to_vec(),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(status(&srv, "/v2/models/simple/ready").await, 400);
    let body = json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![0; 16]}]});
    let (code, _, _) = post(
        &srv,
        "/v2/models/simple/infer",
        body.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!(code, 503);
    let (code, _, _) = post(
        &srv,
        "/v2/repository/models/simple/load",
        b"{}".to_vec(),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, _) = post(
        &srv,
        "/v2/models/simple/infer",
        body.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, _) = post(&srv, "/v2/repository/models/nope/load", vec![], None).await;
    assert_eq!(code, 404);
}

/// The golden labels (onnxruntime + Pillow) for the photos the model is sure about.
const CONFIDENT: [(&str, &str); 5] = [
    ("coffee_600x400.png", "espresso"),
    ("camera_gray_512x512.jpg", "tripod"),
    ("forest_stream_1280x852.webp", "valley"),
    ("mountains_1920x1440.jpg", "alp"),
    ("dogs_exif_orientation6_3088x2048.jpg", "cocker spaniel"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classify_gives_the_golden_labels_over_http_and_on_uploads() {
    let srv = start(&config()).await;
    let golden: Value =
        serde_json::from_slice(&fixture("golden/classifier_efficientnet_lite0.json")).unwrap();
    for (photo, label) in CONFIDENT {
        let res = srv
            .invoke("labels", fixture(&format!("images/{photo}")))
            .await;
        assert_eq!(res.status(), 200, "{photo}");
        let v = body_json(res).await;
        // The answer is the labels document itself.
        let top = &v["labels"][0];
        assert_eq!(top["label"], label, "{photo}: {v}");
        let want = golden["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["file"] == format!("images/{photo}"))
            .unwrap()["top5"][0]["prob"]
            .as_f64()
            .unwrap();
        let got = top["score"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 0.05,
            "{photo}: score {got}, golden {want}"
        );
    }
    // The envelope, base64 and all, when asked for.
    let url = format!("{}/v1/functions/labels/invoke?return=all", srv.base);
    let (photo, label) = CONFIDENT[0];
    let body = fixture(&format!("images/{photo}"));
    let res = srv.client.post(url).body(body).send().await.unwrap();
    let v = body_json(res).await;
    assert_eq!(v["summary"]["labels"][0]["label"], label, "{v}");
    assert_eq!(v["artifacts"][0]["name"], "labels.json");
    // Not an image: a clear 422.
    let res = srv.invoke("labels", b"hello".to_vec()).await;
    assert_eq!(res.status(), 422);

    // Uploads through the bucket: labels/{key}.json with the golden top-1 first.
    let store = srv.running.store().unwrap().clone();
    let mut records = Vec::new();
    for (photo, _) in CONFIDENT {
        store
            .put(
                "uploads",
                &format!("in/{photo}"),
                &fixture(&format!("images/{photo}")),
            )
            .unwrap();
        records.push(s3_record("aws:s3", &format!("in/{photo}")));
    }
    assert_eq!(srv.notify(&records).await.status(), 200);
    for (photo, label) in CONFIDENT {
        let key = format!("labels/in/{photo}.json");
        let bytes = until(&key, async || store.get("derived", &key, 1 << 20).ok()).await;
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["labels"][0]["label"], label, "{photo}: {v}");
        assert_eq!(v["model"], "efficientnet_lite0");
        assert_eq!(v["labels"].as_array().unwrap().len(), 3);
    }
    assert_eq!(srv.json("/v1/dead-letters").await["items"], json!([]));
}

/// The front door of inference: `http.max_inference_requests` admits that many at once (a request
/// counts from before its body is read) and refuses the next with 429; compressed bodies (what
/// tritonclient sends with `request_compression_algorithm`) are inflated within
/// `http.max_inference_body`, and unknown codings are refused with 415.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_admission_and_compressed_bodies() {
    let yaml = format!(
        "http: {{ max_inference_requests: 1, max_inference_body: 64KB }}\nmodels: {}\n",
        root().join("examples/models").display()
    );
    let srv = start(&yaml).await;
    let url = format!("{}/v2/models/simple/infer", srv.base);
    let request = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": (0..16).collect::<Vec<i32>>()},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]},
    ]})
    .to_string()
    .into_bytes();
    // A request whose body never finishes holds the one place: its headers and a first byte
    // written on a raw socket, the rest never sent. Which of two new connections the server
    // admits first is not ordered, so a stall that a poll overtook (the poll ran, the stall was
    // refused) is dropped and opened again.
    let mut stalled = None;
    let refused = until("the second request refused", async || {
        if stalled.is_none() {
            stalled = Some(stall(&srv).await);
        }
        let (code, headers, _) = post(&srv, "/v2/models/simple/infer", request.clone(), None).await;
        if code == 429 {
            return Some(headers);
        }
        stalled = None;
        None
    })
    .await;
    assert_eq!(refused["retry-after"], "1");
    // Hanging up frees the place.
    drop(stalled);
    until("the place freed", async || {
        let (code, _, _) = post(&srv, "/v2/models/simple/infer", request.clone(), None).await;
        (code == 200).then_some(())
    })
    .await;
    // The place is free again; now gzip and deflate bodies, and answers compressed on request.
    use std::io::Read;
    let send = |coding: &'static str, body: Vec<u8>| {
        srv.client
            .post(&url)
            .header("content-encoding", coding)
            .header("accept-encoding", coding)
            .body(body)
            .send()
    };
    for coding in ["gzip", "deflate"] {
        let res = send(coding, pack(coding, &request, 6)).await.unwrap();
        assert_eq!(res.status(), 200, "{coding}");
        assert_eq!(res.headers()["content-encoding"], coding);
        let packed = res.bytes().await.unwrap();
        let mut text = String::new();
        let mut reader: Box<dyn std::io::Read> = if coding == "gzip" {
            Box::new(flate2::read::GzDecoder::new(&packed[..]))
        } else {
            Box::new(flate2::read::ZlibDecoder::new(&packed[..]))
        };
        reader.read_to_string(&mut text).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            ints(&v["outputs"][0]["data"]),
            (1..17).collect::<Vec<i64>>(),
            "{coding}"
        );
    }
    // A bomb: under 64 KB of gzip that inflates past the 64 KB limit.
    let bomb = pack("gzip", &vec![b' '; 50 << 20], 9);
    assert!(bomb.len() < 64_000);
    assert_eq!(send("gzip", bomb).await.unwrap().status(), 413);
    let res = send("br", request).await.unwrap();
    assert_eq!(res.status(), 415);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("Content-Encoding") && text.contains("br"),
        "{text}"
    );
}

/// A connection to `srv` that sent an inference request's headers and one byte of its body.
async fn stall(srv: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stalled = tokio::net::TcpStream::connect(srv.running.http_addr())
        .await
        .unwrap();
    stalled
        .write_all(
            b"POST /v2/models/simple/infer HTTP/1.1\r\nHost: weir\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
    stalled
}

/// `bytes` compressed as an HTTP coding (`gzip`, or `deflate` = zlib) at `level` 0..=9.
fn pack(coding: &str, bytes: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let level = flate2::Compression::new(level);
    if coding == "gzip" {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    } else {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }
}
