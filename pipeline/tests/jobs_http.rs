//! Reprocess jobs over HTTP on an in-process server: mistakes refused with their reason, a
//! second job for a busy function refused, cancel, and live uploads keeping their latency
//! while a job of 2,000 objects runs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [64] }
    triggers:
      - s3: { bucket: live }
    output: { bucket: derived, key: "t/{bucket}/{key}/{size}.jpg" }
    resources: { workers: { max: 2 }, batch: { max_size: 1 }, timeout: 60s }
"#;

fn key(i: usize) -> String {
    format!("{i:04}.jpg")
}

async fn post_job(srv: &TestServer, body: serde_json::Value) -> (u16, serde_json::Value) {
    let res = srv
        .client
        .post(format!("{}/v1/jobs", srv.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), body_json(res).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_refused_with_their_reason() {
    let srv = start(CONFIG).await;
    let s3 = s3_client(&srv, "test-secret-key");
    upload_many(
        &s3,
        "uploads",
        2,
        &fixture("images/chelsea_tiny_32x21.jpg"),
        key,
    )
    .await;
    let cases = [
        (
            json!({ "function": "nope", "bucket": "uploads" }),
            404,
            "no function nope",
        ),
        (
            json!({ "function": "thumbs", "bucket": "missing" }),
            404,
            "no bucket missing",
        ),
        (
            json!({ "function": "thumbs", "bucket": "uploads", "rate": 0 }),
            400,
            "above 0",
        ),
        (
            json!({ "function": "thumbs", "bucket": "uploads", "since": "yesterday" }),
            400,
            "\"yesterday\" is not a time",
        ),
        (
            json!({ "function": "thumbs", "bucket": "uploads", "speed": 1 }),
            400,
            "speed",
        ),
        (json!({ "bucket": "uploads" }), 400, "function"),
    ];
    for (body, status, reason) in cases {
        let (got, answer) = post_job(&srv, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{body}: {error}");
    }
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let url = format!("{}/v1/jobs/j-unknown", srv.base);
        let res = srv.client.request(method, url).send().await.unwrap();
        assert_eq!(res.status(), 404);
        assert_eq!(body_json(res).await["error"], "no job j-unknown");
    }
    // The command checks its flags before asking any server.
    for (flag, value, reason) in [
        ("--rate", "0", "above 0"),
        ("--rate", "fast", "not a number"),
        ("--since", "last tuesday", "is not a time"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["reprocess", "--function", "thumbs", "--bucket", "uploads"])
            .args(["--server", "http://127.0.0.1:9", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(reason),
            "{flag} {value}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_function_at_a_time_and_a_cancelled_job_runs_nothing_more() {
    let srv = start(CONFIG).await;
    let s3 = s3_client(&srv, "test-secret-key");
    upload_many(
        &s3,
        "uploads",
        40,
        &fixture("images/chelsea_tiny_32x21.jpg"),
        key,
    )
    .await;
    let slow = json!({ "function": "thumbs", "bucket": "uploads", "rate": 4 });
    let (status, job) = post_job(&srv, slow.clone()).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let (status, busy) = post_job(&srv, slow).await;
    assert_eq!(status, 409, "{busy}");
    assert!(busy["error"].as_str().unwrap().contains(&id), "{busy}");
    until("a first object processed", async || {
        let job = srv.json(&format!("/v1/jobs/{id}")).await;
        (job["counts"]["processed"].as_u64()? >= 1).then_some(())
    })
    .await;
    let res = srv
        .client
        .delete(format!("{}/v1/jobs/{id}", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(body_json(res).await["state"], "cancelled");
    let at_cancel = srv.json(&format!("/v1/jobs/{id}")).await["counts"]["processed"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let job = srv.json(&format!("/v1/jobs/{id}")).await;
    let processed = job["counts"]["processed"].as_u64().unwrap();
    assert!(processed <= at_cancel + 2, "ran on after the cancel: {job}");
    assert!(processed < 20, "{job}");
    assert_eq!(job["state"], "cancelled");
    let listed = srv.json("/v1/jobs").await;
    assert_eq!(listed["jobs"][0]["id"], id.as_str());
    // A new job may start now.
    let (status, _) = post_job(&srv, json!({ "function": "thumbs", "bucket": "uploads" })).await;
    assert_eq!(status, 201);
}

/// Upload → thumbnail latency of `n` uploads to bucket `live`, one every 100 ms, each timed
/// until its output is in the store.
async fn live_latencies(srv: &TestServer, s3: &aws_sdk_s3::Client, tag: &str) -> Vec<Duration> {
    let photo = fixture("images/rocket_640x427.jpg");
    let store = srv.running.store().unwrap().clone();
    let mut out = Vec::new();
    for i in 0..20 {
        let key = format!("{tag}-{i}.jpg");
        let started = Instant::now();
        s3.put_object()
            .bucket("live")
            .key(&key)
            .body(aws_sdk_s3::primitives::ByteStream::from(photo.clone()))
            .send()
            .await
            .unwrap();
        let output = format!("t/live/{key}/64.jpg");
        while store.head("derived", &output).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{output} never came"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        out.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out.sort();
    out
}

/// Live uploads while a job of 2,000 objects runs wait behind at most the work already on a
/// worker, not behind the job's backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_uploads_keep_their_latency_while_a_job_runs() {
    let srv = start(CONFIG).await;
    let s3 = s3_client(&srv, "test-secret-key");
    upload_many(
        &s3,
        "uploads",
        2000,
        &fixture("images/camera_gray_512x512.jpg"),
        key,
    )
    .await;
    let alone = live_latencies(&srv, &s3, "alone").await;
    let (status, job) = post_job(&srv, json!({ "function": "thumbs", "bucket": "uploads" })).await;
    assert_eq!(status, 201);
    let id = job["id"].as_str().unwrap().to_string();
    until("the job under way", async || {
        let job = srv.json(&format!("/v1/jobs/{id}")).await;
        (job["counts"]["processed"].as_u64()? >= 50).then_some(())
    })
    .await;
    let during = live_latencies(&srv, &s3, "during").await;
    let job = srv.json(&format!("/v1/jobs/{id}")).await;
    assert_eq!(
        job["state"], "running",
        "the job outlasted the measurement: {job}"
    );
    let (p50, p50_job) = (alone[10], during[10]);
    let (p90, p90_job) = (alone[18], during[18]);
    eprintln!(
        "live latency p50 {p50:?} alone, {p50_job:?} during the job; p90 {p90:?}, {p90_job:?}"
    );
    // Generous: a live upload may wait for the job's objects already on the two workers.
    assert!(
        p50_job <= p50 * 3 + Duration::from_millis(50),
        "p50 {p50:?} alone, {p50_job:?} during the job"
    );
    assert!(
        p90_job <= p90 * 4 + Duration::from_millis(100),
        "p90 {p90:?} alone, {p90_job:?} during the job"
    );
    until("the job done", async || {
        let job = srv.json(&format!("/v1/jobs/{id}")).await;
        (job["state"] == "done").then_some(job)
    })
    .await;
}
