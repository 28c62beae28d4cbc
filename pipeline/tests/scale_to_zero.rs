//! Scale to zero: a `classify` function with `workers.min: 0` lets its model go once it has idled
//! past `idle_after` (the model memory figure drops, `/v1/functions` says cold), the next call
//! loads it again and is answered (one cold start counted); an `infer` function with `min: 1`
//! keeps its model.

mod common;

use std::time::Duration;

use common::*;

fn config() -> String {
    format!(
        r#"
models: {}
functions:
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 1 }}
    resources: {{ workers: {{ min: 0, idle_after: 300ms }}, timeout: 60s }}
  - name: kept
    kind: infer
    params: {{ model: simple }}
    resources: {{ workers: {{ min: 1, idle_after: 300ms }} }}
"#,
        root().join("examples/models").display()
    )
}

async fn state(srv: &TestServer, function: &str) -> String {
    let listed = srv.json("/v1/functions").await;
    let f = listed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == function)
        .unwrap()
        .clone();
    f["instances"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn model_memory(srv: &TestServer) -> f64 {
    let text = metrics_text(&srv.client, &srv.base).await;
    metric(&text, "weir_model_memory_bytes", r#"device="cpu""#).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_model_function_goes_cold_and_the_next_call_loads_it_again() {
    let srv = start(&config()).await;
    let photo = fixture("images/rocket_640x427.jpg");
    let res = srv.invoke("labels", photo.clone()).await;
    assert_eq!(res.status(), 200);
    let first = body_json(res).await["labels"][0]["label"].clone();
    let warm_memory = model_memory(&srv).await;

    until("labels cold after idling", async || {
        (state(&srv, "labels").await == "cold").then_some(())
    })
    .await;
    let cold_memory = model_memory(&srv).await;
    assert!(
        cold_memory < warm_memory,
        "the model's memory is given back: {warm_memory} -> {cold_memory}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&srv, "kept").await, "idle", "min: 1 never goes cold");

    let res = srv.invoke("labels", photo).await;
    assert_eq!(res.status(), 200, "the next call loads it again");
    assert_eq!(body_json(res).await["labels"][0]["label"], first);
    let text = metrics_text(&srv.client, &srv.base).await;
    let cold_starts = metric(
        &text,
        "weir_cold_start_seconds_count",
        r#"function="labels""#,
    );
    assert_eq!(cold_starts, Some(1.0), "one cold start counted");
    assert!(model_memory(&srv).await > cold_memory);
}
