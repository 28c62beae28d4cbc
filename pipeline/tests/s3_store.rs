//! `store: { kind: s3 }` end to end: a Weir whose objects live in a remote S3 (a second Weir's
//! built-in endpoint, a real s3s server) reads uploads there and writes its outputs back there,
//! with provenance metadata; missing, oversized and unreachable objects become dead letters or
//! retries with their reasons; a store that does not answer at start is a clear error.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use weir_gpu::Inventory;
use weir_pipeline::config::Config;
use weir_pipeline::server::{self, Settings};

fn store_section(addr: std::net::SocketAddr, secret: &str) -> String {
    format!(
        "store: {{ kind: s3, endpoint: \"http://{addr}\", region: us-east-1, access_key: test-access, secret_key: {secret} }}\n"
    )
}

const THUMBS: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [64] }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { max_input: 50KB, retries: { max: 1, backoff: 100ms } }
"#;

async fn upload(c: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) -> String {
    let out = c
        .put_object()
        .bucket("uploads")
        .key(key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    out.e_tag().unwrap().trim_matches('"').to_string()
}

async fn metadata(c: &aws_sdk_s3::Client, key: &str) -> std::collections::HashMap<String, String> {
    let head = c.head_object().bucket("derived").key(key).send().await;
    head.unwrap().metadata().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_writes_its_outputs_to_a_remote_s3_with_provenance() {
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    let example = root().join("examples/weir.yaml");
    let yaml = std::fs::read_to_string(&example).unwrap()
        + &store_section(remote.running.s3_addr().unwrap(), "test-secret-key");
    let limits = weir_pipeline::http::Limits {
        max_connections: 64,
        header_timeout: Duration::from_millis(500),
    };
    let weir = start_as(&example, &yaml, None, limits).await;
    assert!(weir.running.s3_addr().is_none() && weir.running.store().is_none());

    let photo = "trip/rocket 1.jpg";
    let video = "trip/clip.mp4";
    let photo_etag = upload(&s3, photo, fixture("images/rocket_640x427.jpg")).await;
    upload(&s3, video, fixture("videos/h264_1080p30_scenecut.mp4")).await;
    let res = weir
        .notify(&[
            s3_record("minio:s3", "trip/rocket+1.jpg"),
            s3_record("minio:s3", "trip/clip.mp4"),
        ])
        .await;
    assert_eq!(res.status(), 200);

    let thumb = wait_for(&s3, "derived", "thumbs/trip/rocket 1.jpg/256.jpg").await;
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 256);
    wait_for(&s3, "derived", "thumbs/trip/rocket 1.jpg/1024.jpg").await;
    let labels = wait_for(&s3, "derived", "labels/trip/rocket 1.jpg.json").await;
    let labels: serde_json::Value = serde_json::from_slice(&labels).unwrap();
    assert!(labels.to_string().contains("label"), "{labels}");
    let manifest = wait_for(&s3, "derived", "keyframes/trip/clip.mp4/manifest.json").await;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["frames"].as_array().unwrap().len(),
        5,
        "{manifest}"
    );
    let frame = wait_for(&s3, "derived", "keyframes/trip/clip.mp4/0.jpg").await;
    assert_eq!(image::load_from_memory(&frame).unwrap().width(), 640);

    let m = metadata(&s3, "thumbs/trip/rocket 1.jpg/256.jpg").await;
    assert_eq!(m["weir-source-bucket"], "uploads");
    assert_eq!(m["weir-source-key"], "trip/rocket%201.jpg");
    assert_eq!(m["weir-source-etag"], photo_etag);
    assert_eq!(m["weir-function"], "thumbs");
    let hash = &m["weir-spec-hash"];
    assert!(
        hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    let labels_meta = metadata(&s3, "labels/trip/rocket 1.jpg.json").await;
    assert_eq!(labels_meta["weir-function"], "labels");
    assert_ne!(
        &labels_meta["weir-spec-hash"], hash,
        "another spec, another hash"
    );
    let frames = metadata(&s3, "keyframes/trip/clip.mp4/manifest.json").await;
    assert_eq!(frames["weir-source-key"], "trip/clip.mp4");
    assert_eq!(frames["weir-function"], "keyframes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_oversized_objects_are_dead_lettered_with_their_reasons() {
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    let yaml = store_section(remote.running.s3_addr().unwrap(), "test-secret-key") + THUMBS;
    let weir = start(&yaml).await;
    upload(&s3, "big.jpg", fixture("images/camera_gray_512x512.jpg")).await;
    upload(&s3, "small.jpg", fixture("images/chelsea_tiny_32x21.jpg")).await;
    let res = weir
        .notify(&[
            s3_record("minio:s3", "gone.jpg"),
            s3_record("minio:s3", "big.jpg"),
            s3_record("minio:s3", "small.jpg"),
        ])
        .await;
    assert_eq!(res.status(), 200);
    wait_for(&s3, "derived", "thumbs/small.jpg/64.jpg").await;
    let items = dead_letters(&weir, 2).await;
    let find = |key: &str| items.iter().find(|i| i["key"] == key).unwrap().clone();
    let gone = find("gone.jpg");
    assert_eq!(gone["kind"], "bad_input", "{gone}");
    assert!(gone["reason"].as_str().unwrap().contains("404"), "{gone}");
    let big = find("big.jpg");
    assert_eq!(big["kind"], "too_large", "{big}");
    assert!(big["reason"].as_str().unwrap().contains("59366"), "{big}");
    assert_eq!(items.len(), 2, "{items:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_stops_answering_is_retried_then_dead_lettered() {
    let remote = start("functions: []").await;
    let addr = remote.running.s3_addr().unwrap();
    let yaml = store_section(addr, "test-secret-key") + THUMBS;
    let weir = start(&yaml).await;
    assert_eq!(weir.ready().await.0, 200, "ready while the store answers");
    remote.running.shutdown().await.unwrap();
    let (status, why) = weir.ready().await;
    assert_eq!(status, 503, "{why}");
    assert_eq!(why["bus"], "ok", "{why}");
    assert!(
        why["store"].as_str().unwrap().contains(&addr.to_string()),
        "{why}"
    );
    let res = weir.notify(&[s3_record("minio:s3", "late.jpg")]).await;
    assert_eq!(res.status(), 200);
    let items = dead_letters(&weir, 1).await;
    assert_eq!(items[0]["kind"], "transient", "{items:?}");
    assert_eq!(items[0]["attempts"], 2, "one try and one retry: {items:?}");
    let reason = items[0]["reason"].as_str().unwrap();
    assert!(reason.contains(&addr.to_string()), "{reason}");
    let metrics = metrics_text(&weir.client, &weir.base).await;
    assert!(
        metrics.contains(r#"weir_events_retried_total{function="thumbs",kind="transient"} 1"#),
        "{metrics}"
    );
    let health = weir
        .client
        .get(format!("{}/healthz", weir.base))
        .send()
        .await;
    assert_eq!(health.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_or_refuses_the_keys_at_start_is_a_clear_error() {
    let remote = start("functions: []").await;
    let addr = remote.running.s3_addr().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    for (yaml, expect) in [
        (store_section(down, "test-secret-key") + THUMBS, "transient"),
        (store_section(addr, "wrong-secret") + THUMBS, "403"),
    ] {
        let cfg = Config::parse(Path::new("t.yaml"), &yaml, &Inventory::cpu_only("t")).unwrap();
        let data = tempfile::tempdir().unwrap();
        let settings = Settings::loopback(data.path().to_path_buf());
        let Err(e) = server::start(&settings, &cfg).await else {
            panic!("started against {yaml}");
        };
        let e = e.to_string();
        let at = if expect == "403" { addr } else { down };
        assert!(e.contains(&format!("http://{at}")), "{e}");
        if expect == "403" {
            assert!(e.contains(expect), "{e}");
        }
    }
}

/// A poller whose store stops answering backs off, counts and logs its failures, and stops
/// nothing else: the webhook still records events and the server still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_poller_backs_off_and_stops_nothing_else() {
    let remote = start("functions: []").await;
    let yaml = store_section(remote.running.s3_addr().unwrap(), "test-secret-key")
        + &THUMBS.replace(
            "      - s3: { bucket: uploads, suffix: .jpg }",
            "      - s3: { bucket: uploads, suffix: .jpg }\n      - poll: { bucket: uploads, prefix: polled/, interval: 1s }",
        );
    let weir = start(&yaml).await;
    remote.running.shutdown().await.unwrap();
    let errors = until("two failed polling rounds", async || {
        let text = metrics_text(&weir.client, &weir.base).await;
        let n = text
            .lines()
            .find(|l| l.starts_with(r#"weir_poll_errors_total{function="thumbs"}"#))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        (n >= 2.0).then_some(n)
    })
    .await;
    assert!(errors >= 2.0);
    let res = weir.notify(&[s3_record("minio:s3", "still.jpg")]).await;
    assert_eq!(res.status(), 200, "the webhook still records events");
    let res = weir
        .client
        .get(format!("{}/healthz", weir.base))
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 200);
}
