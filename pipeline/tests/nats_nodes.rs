//! Two Weir nodes (the real binary, twice) on one JetStream stream and one S3 store share a
//! function's work, and a notification sent to both is run once: the event id is the message id.

mod common;

use std::time::Duration;

use common::*;

async fn invocations(port: u16) -> u64 {
    let text = metrics_text(&reqwest::Client::new(), &format!("http://127.0.0.1:{port}")).await;
    text.lines()
        .filter(|l| l.starts_with("weir_invocations_total{") && l.contains(r#"function="thumbs""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Two `weir serve` nodes with the same config, each with its own data directory.
fn two_nodes(dir: &std::path::Path, config: &str) -> Vec<Node> {
    ["a", "b"]
        .iter()
        .map(|name| Node::serve(&dir.join(name), config, &[], &[]))
        .collect()
}

/// Invocations on each node, then both stopped with SIGTERM (a clean exit).
async fn count_and_stop(nodes: Vec<Node>) -> (u64, u64) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (a, b) = (
        invocations(nodes[0].port).await,
        invocations(nodes[1].port).await,
    );
    nodes.into_iter().for_each(Node::stop);
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_the_work_and_a_repeated_notification_runs_once() {
    const N: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats"));
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    upload_copies(&s3, N, &fixture("images/rocket_640x427.jpg"), |i| {
        format!("shared/{i:02}.jpg")
    })
    .await;
    let config = format!(
        r#"
{}
bus: {{ kind: nats, url: "{}", stream: shared, ack_wait: 5s }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [64] }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .jpg }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
    resources: {{ workers: {{ max: 1 }} }}
"#,
        store_on(&remote),
        nats.url
    );
    let nodes = two_nodes(dir.path(), &config);
    let records: Vec<String> = (0..N)
        .map(|i| s3_record("minio:s3", &format!("shared/{i:02}.jpg")))
        .collect();
    // The same notifications to both nodes, as a store with two webhook targets would send.
    for node in &nodes {
        assert_eq!(notify_port(node.port, &records).await.status(), 200);
    }
    for i in 0..N {
        wait_for(&s3, "derived", &format!("thumbs/shared/{i:02}.jpg/64.jpg")).await;
    }
    // The last outputs are written just before their acks: pending reaches 0 right after.
    let url = format!("http://127.0.0.1:{}/v1/functions", nodes[1].port);
    until("bus_pending 0 on node b", async || {
        let listed = body_json(reqwest::get(&url).await.ok()?).await;
        (listed["functions"][0]["bus_pending"] == 0).then_some(())
    })
    .await;
    let (a, b) = count_and_stop(nodes).await;
    eprintln!("node a ran {a} invocations, node b {b}");
    assert_eq!(
        a + b,
        N as u64,
        "each event once: node a ran {a}, node b {b}"
    );
    assert!(a > 0 && b > 0, "both nodes worked: a {a}, b {b}");
}

/// When JetStream stops answering, the webhook cannot record and says so with a 503 and
/// `Retry-After` (S3 and MinIO send again), and the node reports itself not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_jetstream_the_webhook_answers_503_and_the_node_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats"));
    let yaml = format!(
        r#"
bus: {{ kind: nats, url: "{}", stream: gone }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [64] }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .jpg }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
"#,
        nats.url
    );
    let weir = start(&yaml).await;
    assert_eq!(weir.ready().await.0, 200);
    drop(nats);
    let res = weir.notify(&[s3_record("minio:s3", "a.jpg")]).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let (status, why) = weir.ready().await;
    assert_eq!(status, 503, "{why}");
    assert_ne!(why["bus"], "ok", "{why}");
    assert_eq!(why["store"], "ok", "{why}");
}

/// The subject trigger, through a real NATS client: an object reference becomes the function's
/// outputs; an inline payload with a reply subject is answered with them; anything else is
/// refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_trigger_takes_references_and_answers_inline_payloads() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats"));
    let yaml = format!(
        r#"
bus: {{ kind: nats, url: "{}", stream: subjects }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [64] }}
    triggers:
      - nats: {{ subject: "media.in.>" }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
"#,
        nats.url
    );
    let weir = start(&yaml).await;
    let s3 = s3_client(&weir, "test-secret-key");
    s3.create_bucket().bucket("uploads").send().await.unwrap();
    let photo = fixture("images/rocket_640x427.jpg");
    let body = aws_sdk_s3::primitives::ByteStream::from(photo.clone());
    s3.put_object()
        .bucket("uploads")
        .key("ref.jpg")
        .body(body)
        .send()
        .await
        .unwrap();
    let client = async_nats::connect(nats.url.as_str()).await.unwrap();

    let reference = br#"{"bucket":"uploads","key":"ref.jpg"}"#.to_vec();
    let reply = client
        .request("media.in.photos", reference.into())
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(answer["accepted"], 1, "{answer}");
    let thumb = wait_for(&s3, "derived", "thumbs/ref.jpg/64.jpg").await;
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 64);

    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "image/jpeg");
    let reply = client
        .request_with_headers("media.in.inline", headers, photo.into())
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    let data = answer["artifacts"][0]["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{answer}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 64);

    let reply = client
        .request("media.in.x", "not a reference".into())
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(answer["kind"], "bad_input", "{answer}");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Content-Type", "image/jpeg");
    let reply = client
        .request_with_headers("media.in.x", headers, b"garbage".to_vec().into())
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(answer["kind"], "bad_input", "{answer}");
}

/// Both nodes poll the same bucket, each with its own state; a version's event has one id on
/// both, so JetStream stores it once and the function runs once per object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pollers_on_one_stream_run_each_version_once() {
    const N: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats"));
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    upload_copies(&s3, N, &fixture("images/chelsea_tiny_32x21.jpg"), |i| {
        format!("polled/{i:02}.jpg")
    })
    .await;
    let config = format!(
        r#"
{}
bus: {{ kind: nats, url: "{}", stream: polled }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [16] }}
    triggers:
      - poll: {{ bucket: uploads, prefix: polled/, interval: 1s }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
"#,
        store_on(&remote),
        nats.url
    );
    let nodes = two_nodes(dir.path(), &config);
    for i in 0..N {
        wait_for(&s3, "derived", &format!("thumbs/polled/{i:02}.jpg/16.jpg")).await;
    }
    // Three more rounds on each node: nothing new may run.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (a, b) = count_and_stop(nodes).await;
    assert_eq!(
        a + b,
        N as u64,
        "each version once: node a ran {a}, node b {b}"
    );
}

/// A node started before JetStream answers waits for it (up to 30 s: a cluster may still be
/// electing) and then serves, instead of failing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_before_nats_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let nats_port = free_port();
    let config = format!(
        r#"
bus: {{ kind: nats, url: "nats://127.0.0.1:{nats_port}", stream: late }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [64] }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .jpg }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
"#
    );
    let nats_dir = dir.path().join("nats");
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        Nats::start_on(&nats_dir, nats_port)
    });
    let started = std::time::Instant::now();
    let node = Node::serve(
        &dir.path().join("node"),
        &config,
        &["--s3-listen", "127.0.0.1:0"],
        &[],
    );
    let waited = started.elapsed();
    let _nats = late.join().unwrap();
    let ready = reqwest::get(format!("http://127.0.0.1:{}/healthz/ready", node.port))
        .await
        .unwrap();
    assert!(
        waited >= Duration::from_secs(2),
        "served after {waited:?}, before NATS was up"
    );
    assert_eq!(ready.status(), 200);
}
