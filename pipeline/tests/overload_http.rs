//! Far more concurrent invocations than a pool admits: the rest get 429 at once, every admitted one
//! is correct, admitted work stays within capacity, and shutdown finishes what was admitted.

mod common;

use common::*;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256] }
    resources: { workers: { max: 1 }, batch: { max_size: 1 }, queue: 2, timeout: 120s }
"#;

async fn stats(srv: &TestServer) -> serde_json::Value {
    srv.json("/v1/functions").await["functions"][0]["stats"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_429s_and_every_admitted_invocation_is_right() {
    let srv = start(CONFIG).await;
    assert_eq!(stats(&srv).await["capacity"], 3);
    let photo = fixture("images/dandelions_5312x2988.jpg");
    let url = format!("{}/v1/functions/thumbs/invoke", srv.base);
    let sends = (0..40).map(|_| {
        let req = srv.client.post(&url).body(photo.clone());
        tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (status, retry, body_json(res).await)
        })
    });
    let results: Vec<_> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let refused = results.iter().filter(|r| r.0 == 429).count();
    assert_eq!(
        ok + refused,
        40,
        "only 200 and 429 expected: {:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert!(ok >= 3, "at least a full pool's worth admitted, got {ok}");
    assert!(refused >= 1, "nothing was refused");
    for (status, retry, body) in &results {
        if *status == 200 {
            assert_eq!(body["summary"]["thumbnails"][0]["width"], 256);
            assert_eq!(body["summary"]["thumbnails"][0]["height"], 144);
        } else {
            assert_eq!(retry.as_deref(), Some("1"));
            assert_eq!(body["kind"], "overloaded");
            assert!(body["error"].as_str().unwrap().contains("capacity"));
        }
    }
    let s = stats(&srv).await;
    assert!(
        s["peak_in_flight"].as_u64().unwrap() <= 3,
        "admitted beyond capacity: {s}"
    );
    assert_eq!(s["in_flight"], 0);
    // Once the flood is over, the pool takes work again.
    assert_eq!(
        srv.invoke("thumbs", fixture("images/chelsea_tiny_32x21.jpg"))
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_admitted_work() {
    let srv = start(CONFIG).await;
    let photo = fixture("images/dandelions_5312x2988.jpg");
    let url = format!("{}/v1/functions/thumbs/invoke", srv.base);
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let req = srv.client.post(&url).body(photo.clone());
            tokio::spawn(async move { req.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for _ in 0..500 {
        if stats(&srv).await["in_flight"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        stats(&srv).await["in_flight"],
        3,
        "the three were not admitted"
    );
    let TestServer {
        running,
        client,
        base,
        ..
    } = srv;
    running.shutdown().await.unwrap();
    for p in pending {
        assert_eq!(
            p.await.unwrap().unwrap(),
            200,
            "admitted work was dropped at shutdown"
        );
    }
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "still serving after shutdown"
    );
}
