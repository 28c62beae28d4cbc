//! A backlog is not a failure (issue 14): 500 uploads pending when the server starts, a 2 s
//! timeout on a function that takes tens of milliseconds, two cores. The timeout bounds each run,
//! not the wait, and the consumer takes from the bus only what can start: every output appears,
//! with no timeouts, no retries and no dead letters. One test in this binary, so the process-wide
//! metrics count only it.

mod common;

use std::time::Duration;

use common::*;
use weir_gpu::Inventory;
use weir_pipeline::bus::{Bus, EmbeddedBus, SystemClock};
use weir_pipeline::config::Config;
use weir_pipeline::events::{Event, ObjectRef};
use weir_pipeline::server::{self, Settings};
use weir_pipeline::store::LocalStore;

const N: usize = 500;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256] }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { timeout: 2s, retries: { max: 2, backoff: 100ms } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_pending_uploads_finish_without_a_timeout_retry_or_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let photo = fixture("images/fig_bowl_progressive_1286x870.jpg");
    {
        // What a server killed with a backlog leaves: objects stored, their events on the bus.
        let store = LocalStore::open(&data.join("objects")).unwrap();
        store.create_bucket("uploads").unwrap();
        let bus =
            EmbeddedBus::open(&data.join("bus.redb"), std::sync::Arc::new(SystemClock)).unwrap();
        for i in 0..N {
            let key = format!("backlog/{i}.jpg");
            store.put("uploads", &key, &photo).unwrap();
            let object = ObjectRef {
                bucket: "uploads".into(),
                key: key.clone(),
                size: Some(photo.len() as u64),
                etag: None,
                version: None,
            };
            let event = Event {
                id: key,
                source: "test".into(),
                time: String::new(),
                name: "s3:ObjectCreated:Put".into(),
                object,
                payload: None,
                request: None,
            };
            bus.publish(event, vec!["thumbs".into()]).await.unwrap();
        }
        bus.close().await;
    }
    let cfg = Config::parse(
        std::path::Path::new("test.yaml"),
        CONFIG,
        &Inventory::cpu_only("tests"),
    )
    .unwrap();
    let running = server::start(&Settings::loopback(data), &cfg)
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr());
    let store = running.store().unwrap().clone();
    let client = reqwest::Client::new();
    let done = || {
        let s = store.clone();
        async move {
            tokio::task::spawn_blocking(move || s.list("derived", "thumbs/backlog/").unwrap().len())
                .await
                .unwrap()
        }
    };
    let start = std::time::Instant::now();
    while done().await < N {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "only {} of {N} outputs",
            done().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    let text = metrics_text(&client, &base).await;
    let thumbs = r#"function="thumbs""#;
    assert_eq!(
        metric(&text, "weir_invocations_total", r#"outcome="ok""#),
        Some(N as f64)
    );
    for outcome in ["timeout", "transient", "bad_input"] {
        let label = format!(r#"outcome="{outcome}""#);
        assert_eq!(
            metric(&text, "weir_invocations_total", &label),
            None,
            "{outcome}"
        );
    }
    assert_eq!(metric(&text, "weir_events_retried_total", thumbs), None);
    assert_eq!(
        metric(&text, "weir_events_dead_lettered_total", thumbs),
        None
    );
    assert_eq!(
        metric(&text, "weir_events_done_total", thumbs),
        Some(N as f64)
    );
    let dead = client
        .get(format!("{base}/v1/dead-letters"))
        .send()
        .await
        .unwrap();
    let dead = body_json(dead).await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 0, "{dead}");
    // The test proves something only if the backlog held more work than one timeout.
    let work = metric(&text, "weir_function_duration_seconds_sum", thumbs).unwrap();
    eprintln!("{N} pending uploads done in {took:?}; {work:.1} s of function time");
    assert!(work > 2.0, "the backlog held only {work:.1} s of work");
    running.shutdown().await.unwrap();
}
