//! The bucket poller end to end, with the real binary: a Weir whose store is a remote S3 (a
//! second Weir's built-in endpoint) polls a bucket of 2,000 objects, some added while it is
//! stopped, some overwritten, one deleted and re-created. Every version runs exactly once,
//! counted by invocations (not only by outputs), across a restart.

mod common;

use std::process::Child;
use std::time::Duration;

use common::*;

fn config(remote: std::net::SocketAddr) -> String {
    format!(
        r#"
store: {{ kind: s3, endpoint: "http://{remote}", region: us-east-1, access_key: test-access, secret_key: test-secret-key }}
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [2] }}
    triggers:
      - poll: {{ bucket: uploads, prefix: p/, suffix: .png, interval: 1s }}
    output: {{ bucket: derived, key: "thumbs/{{key}}/{{size}}.jpg" }}
    resources: {{ workers: {{ max: 2 }}, batch: {{ max_size: 8, max_delay: 1ms }}, queue: 64 }}
"#
    )
}

/// A 4x4 PNG whose pixels come from `seed`: every seed its own bytes.
fn png(seed: u32) -> Vec<u8> {
    let [a, b, c, _] = seed.to_le_bytes();
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([a, b, c]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn put_all(s3: &aws_sdk_s3::Client, items: Vec<(String, Vec<u8>)>) {
    use futures::StreamExt;
    futures::stream::iter(items)
        .for_each_concurrent(8, |(key, body)| async move {
            s3.put_object()
                .bucket("uploads")
                .key(&key)
                .body(body.into())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        })
        .await;
}

/// Every invocation of `thumbs` this process has run, whatever its outcome.
async fn invocations(client: &reqwest::Client, base: &str) -> u64 {
    let Ok(res) = client.get(format!("{base}/metrics")).send().await else {
        return 0;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("weir_invocations_total{") && l.contains(r#"function="thumbs""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Waits for `n` invocations, then for three more polling rounds, and checks that the count
/// is exactly `n` then.
async fn settle(client: &reqwest::Client, base: &str, n: u64) {
    until(&format!("{n} invocations"), async || {
        (invocations(client, base).await >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seen = invocations(client, base).await;
    if seen != n {
        let text = metrics_text(client, base).await;
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("weir_invocations")
                    || l.starts_with("weir_events")
                    || l.starts_with("weir_poll")
            })
            .collect();
        panic!("{seen} invocations, expected {n}:\n{}", lines.join("\n"));
    }
}

fn stop(mut child: Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "weir exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_runs_exactly_once_across_a_restart() {
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    for b in ["uploads", "derived"] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("weir.yaml"),
        config(remote.running.s3_addr().unwrap()),
    )
    .unwrap();
    let key = |i: u32| format!("p/{i:04}.png");
    // 1,600 objects before the first start, and some the trigger does not match.
    let mut first: Vec<(String, Vec<u8>)> = (0..1600).map(|i| (key(i), png(i))).collect();
    first.push(("p/notes.txt".into(), b"x".to_vec()));
    first.push(("q/0001.png".into(), png(1)));
    put_all(&s3, first).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let weir = serve_binary(dir.path(), port, &[], &[]);
    settle(&client, &base, 1600).await;

    // While it runs: 100 overwritten with new bytes, one deleted and put back unchanged.
    put_all(&s3, (0..100).map(|i| (key(i), png(10_000 + i))).collect()).await;
    s3.delete_object()
        .bucket("uploads")
        .key(key(100))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    put_all(&s3, vec![(key(100), png(100))]).await;
    settle(&client, &base, 1701).await;
    stop(weir);

    // While it is stopped: 400 new, 50 overwritten.
    put_all(&s3, (1600..2000).map(|i| (key(i), png(i))).collect()).await;
    put_all(&s3, (200..250).map(|i| (key(i), png(20_000 + i))).collect()).await;
    let weir = serve_binary(dir.path(), port, &[], &[]);
    settle(&client, &base, 450).await; // only what changed
    stop(weir);

    let store = remote.running.store().unwrap();
    assert_eq!(store.list("derived", "thumbs/p/").unwrap().len(), 2000);
    assert!(store.list("derived", "thumbs/q/").unwrap().is_empty());
    let source = store.head("uploads", &key(210)).unwrap();
    let output = store.head("derived", "thumbs/p/0210.png/2.jpg").unwrap();
    assert_eq!(output.headers.metadata["weir-source-etag"], source.etag);
}
