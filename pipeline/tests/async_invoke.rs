//! Asynchronous invokes: `Prefer: respond-async` or `?async=true` answers 202 with an id and a
//! `Location`; `GET /v1/invocations/{id}` gives the status and, once done, what the call that
//! waits answers; a failure says its kind and reason; the body and the queue are bounded; and a
//! server killed between the 202 and the run still yields every result after its restart.

mod common;

use common::*;
use serde_json::{Value, json};

fn config(extra: &str) -> String {
    format!(
        r#"
models: {}
functions:
  - name: sum
    kind: infer
    params: {{ model: simple }}
{extra}"#,
        root().join("examples/models").display()
    )
}

fn tensors(a: i32) -> Value {
    json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![a; 16]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]}]})
}

async fn post(base: &str, path: &str, body: Vec<u8>, prefer: bool) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if prefer {
        req = req.header("prefer", "respond-async");
    }
    req.send().await.unwrap()
}

/// The invocation once it has ended.
async fn ended(base: &str, location: &str) -> Value {
    let client = reqwest::Client::new();
    until("the invocation to end", async || {
        let res = client.get(format!("{base}{location}")).send().await.ok()?;
        let v: Value = serde_json::from_slice(&res.bytes().await.ok()?).ok()?;
        (v["status"] == "succeeded" || v["status"] == "failed").then_some(v)
    })
    .await
}

/// Submit without waiting: the id and where to look.
async fn submit(base: &str, body: &Value) -> (String, String) {
    let path = "/v1/functions/sum/invoke?async=true";
    let res = post(base, path, body.to_string().into_bytes(), false).await;
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let v = body_json(res).await;
    assert_eq!(v["status"], "queued");
    assert_eq!(
        location,
        format!("/v1/invocations/{}", v["id"].as_str().unwrap())
    );
    (v["id"].as_str().unwrap().to_string(), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_invoke_answers_202_then_the_result_the_waiting_call_gets() {
    let srv = start(&config("invocations: { max_body: 2KB }\n")).await;
    let waited = srv.invoke("sum", tensors(3).to_string().into_bytes()).await;
    assert_eq!(waited.status(), 200);
    let waited = body_json(waited).await;

    let (_, location) = submit(&srv.base, &tensors(3)).await;
    let done = ended(&srv.base, &location).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["function"], "sum");
    assert_eq!(done["result"]["status"], 200);
    assert_eq!(
        done["result"]["body"], waited,
        "the same answer as the call that waits"
    );
    assert!(done["finished"].as_str().unwrap() >= done["submitted"].as_str().unwrap());

    // RFC 7240's header asks the same.
    let body = tensors(5).to_string().into_bytes();
    let res = post(&srv.base, "/v1/functions/sum/invoke", body, true).await;
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["preference-applied"], "respond-async");
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let done = ended(&srv.base, &location).await;
    let outputs = &done["result"]["body"]["outputs"];
    assert_eq!(outputs[0]["data"], json!(vec![6; 16]), "5 + 1: {done}");

    // A wrong tensor runs and fails: the reason is kept, and it is a dead letter.
    let wrong = json!({"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "INT32", "data": [1, 2, 3]}]});
    let (_, location) = submit(&srv.base, &wrong).await;
    let failed = ended(&srv.base, &location).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["kind"], "bad_input", "{failed}");
    assert!(!failed["error"]["reason"].as_str().unwrap().is_empty());
    assert_eq!(dead_letters(&srv, 1).await[0]["function"], "sum");

    // Bad input at the door.
    let big = vec![b' '; 4096];
    let res = post(&srv.base, "/v1/functions/sum/invoke?async=true", big, false).await;
    assert_eq!(res.status(), 413);
    let why = body_json(res).await;
    assert!(why["error"].as_str().unwrap().contains("max_body"), "{why}");
    let res = post(
        &srv.base,
        "/v1/functions/nope/invoke?async=true",
        vec![],
        false,
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = srv
        .client
        .get(format!("{}/v1/invocations/0123456789abcdef", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = post(
        &srv.base,
        "/v1/functions/sum/invoke?async=true&return=most",
        vec![],
        false,
    )
    .await;
    assert_eq!(res.status(), 400);
    let listed = srv.json("/v1/functions").await;
    assert_eq!(listed["functions"][0]["async_pending"], 0, "{listed}");
}

/// A Python handler that sleeps as long as the event says, one worker process at a time.
fn sleepy() -> String {
    let python = venv_python("awslambdaric");
    let workdir = root().join("pipeline/tests/lambda");
    format!(
        "functions:\n  - name: sleepy\n    kind: process\n    params: {{ command: [{}, -m, awslambdaric, behaviours.sleepy], workdir: {} }}\n    resources: {{ workers: {{ max: 1 }}, timeout: 20s }}\n",
        python.display(),
        workdir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_after_the_202_yields_every_result_after_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::serve(dir.path(), &sleepy(), &[], &[]);
    let base = format!("http://127.0.0.1:{}", node.port);
    let mut submitted = Vec::new();
    for _ in 0..6 {
        let body = json!({ "sleep": 0.3 }).to_string().into_bytes();
        let res = post(&base, "/v1/functions/sleepy/invoke", body, true).await;
        assert_eq!(res.status(), 202);
        submitted.push(res.headers()["location"].to_str().unwrap().to_string());
    }
    // Killed at once: one worker, 0.3 s each, so most wait on the bus.
    drop(node);
    let restarted = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let node = Node::serve(dir.path(), &sleepy(), &[], &[]);
    let base = format!("http://127.0.0.1:{}", node.port);
    let mut after_restart = 0;
    for location in submitted {
        let done = ended(&base, &location).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(done["result"]["body"]["pid"].as_u64().is_some(), "{done}");
        if done["finished"].as_str().unwrap() > restarted.as_str() {
            after_restart += 1;
        }
    }
    assert!(after_restart > 0, "some ran only after the restart");
    node.stop();
}
