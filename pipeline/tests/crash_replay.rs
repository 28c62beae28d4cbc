//! Crash and replay with the real binary: notifications accepted (200), the server killed with
//! SIGKILL before it could process them, started again on the same data directory: every expected
//! output exists, once, and nothing is dead-lettered.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use weir_pipeline::store::LocalStore;

const N: usize = 12;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256] }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { workers: { max: 1 }, batch: { max_size: 1 }, queue: 2, timeout: 60s }
"#;

fn serve_with_s3(dir: &std::path::Path, port: u16, s3_port: u16) -> Child {
    let s3 = format!("127.0.0.1:{s3_port}");
    let keys = [
        ("WEIR_S3_ACCESS_KEY", "crash"),
        ("WEIR_S3_SECRET_KEY", "crash-secret"),
    ];
    serve_binary(dir, port, &["--s3-listen", &s3], &keys)
}

/// Outputs finished, read from the store while no server holds it.
fn done_offline(dir: &std::path::Path) -> usize {
    let store = LocalStore::open(&dir.join("data/objects")).unwrap();
    store.list("derived", "thumbs/crash/").unwrap().len()
}

/// Outputs finished, listed through the running server's S3 endpoint: one key per output.
async fn done(s3: &aws_sdk_s3::Client) -> usize {
    match s3
        .list_objects_v2()
        .bucket("derived")
        .prefix("thumbs/crash/")
        .send()
        .await
    {
        Ok(l) => l.contents().len(),
        Err(_) => 0,
    }
}

fn s3_client(s3_port: u16) -> aws_sdk_s3::Client {
    s3_client_at(s3_port, "crash", "crash-secret")
}

/// Notifications of the N photos, accepted (200: on the bus) by the server on `port`.
async fn notify_all(port: u16) {
    let records: Vec<String> = (0..N)
        .map(|i| s3_record("aws:s3", &format!("crash/{i}.jpg")))
        .collect();
    assert_eq!(notify_port(port, &records).await.status(), 200, "accepted");
}

/// After the restart: every output appears, once, and the server stops cleanly on SIGTERM.
async fn all_done_after_restart(
    s3: &aws_sdk_s3::Client,
    mut second: Child,
    before: usize,
    what: &str,
) {
    let start = Instant::now();
    loop {
        let n = done(s3).await;
        assert!(n <= N, "{n} outputs for {N} {what}s: duplicates");
        if n == N {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {n} of {N} after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{what}s: {before} of {N} were done before the kill; the rest after the restart");
    let killed = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(second.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_finishes_every_accepted_event_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weir.yaml"), CONFIG).unwrap();
    {
        // Objects put straight into the store before any server holds it.
        let store = LocalStore::open(&dir.path().join("data/objects")).unwrap();
        store.create_bucket("uploads").unwrap();
        let photo = fixture("images/dandelions_5312x2988.jpg");
        for i in 0..N {
            store
                .put("uploads", &format!("crash/{i}.jpg"), &photo)
                .unwrap();
        }
    }
    let (port, s3_port) = (free_port(), free_port());
    let mut first = serve_with_s3(dir.path(), port, s3_port);
    notify_all(port).await;
    let client = reqwest::Client::new();
    // Killed right after the 200: one worker cannot have thumbnailed twelve 16 MP photos yet.
    first.kill().unwrap();
    first.wait().unwrap();
    let before = done_offline(dir.path());
    assert!(
        before < N,
        "everything finished before the kill; the test proves nothing"
    );

    let second = serve_with_s3(dir.path(), port, s3_port);
    let base = format!("http://127.0.0.1:{port}");
    let s3 = s3_client(s3_port);
    let start = Instant::now();
    while done(&s3).await < N {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "only {} of {N} after the restart",
            done(&s3).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead: serde_json::Value = client
        .get(format!("{base}/v1/dead-letters"))
        .send()
        .await
        .unwrap()
        .json_body()
        .await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 0, "{dead}");
    all_done_after_restart(&s3, second, before, "event").await;
}

trait JsonBody {
    async fn json_body(self) -> serde_json::Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_answered_200_survive_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("weir.yaml"), CONFIG).unwrap();
    let (port, s3_port) = (free_port(), free_port());
    let mut first = serve_with_s3(dir.path(), port, s3_port);
    let s3 = s3_client(s3_port);
    let photo = fixture("images/dandelions_5312x2988.jpg");
    // All at once: the uploads finish long before one worker could thumbnail them all.
    let puts = (0..N).map(|i| {
        let body = aws_sdk_s3::primitives::ByteStream::from(photo.clone());
        s3.put_object()
            .bucket("uploads")
            .key(format!("crash/{i}.jpg"))
            .body(body)
            .send()
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    // Every upload has had its 200; kill before one worker can have done all twelve.
    first.kill().unwrap();
    first.wait().unwrap();
    let before = done_offline(dir.path());
    assert!(
        before < N,
        "everything finished before the kill; the test proves nothing"
    );

    let second = serve_with_s3(dir.path(), port, s3_port);
    all_done_after_restart(&s3, second, before, "upload").await;
}

/// The same with `store: s3`: the objects and the outputs live in a remote S3 (a second Weir's
/// built-in endpoint, in this process); the killed server's bus still replays every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_s3_store_a_killed_server_finishes_every_accepted_event() {
    let remote = common::start("functions: []").await;
    let s3 = common::s3_client(&remote, "test-secret-key");
    let photo = fixture("images/dandelions_5312x2988.jpg");
    upload_copies(&s3, N, &photo, |i| format!("crash/{i}.jpg")).await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "store: {{ kind: s3, endpoint: \"http://{}\", access_key: test-access, secret_key: test-secret-key }}\n",
        remote.running.s3_addr().unwrap()
    );
    std::fs::write(dir.path().join("weir.yaml"), store + CONFIG).unwrap();
    let (port, s3_port) = (free_port(), free_port());
    let mut first = serve_with_s3(dir.path(), port, s3_port);
    notify_all(port).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let before = done(&s3).await;
    assert!(
        before < N,
        "everything finished before the kill; the test proves nothing"
    );
    let second = serve_with_s3(dir.path(), port, s3_port);
    all_done_after_restart(&s3, second, before, "remote event").await;
}
