//! `kind: process` with Python's own Lambda runtime interface client (`awslambdaric`, from
//! PyPI, in the `.venv` that ./test.sh makes) running handlers unchanged: the example handler
//! on uploads through the built-in S3 endpoint, batches with one bad record, timeouts, exits,
//! init failures, and warm reuse.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{TestServer, dead_letters, metric, s3_client, start, until, wait_for};
use serde_json::{Value, json};
use sha2::Digest;

/// A config with one `process` function running `handler` from `dir` (under the repository)
/// through awslambdaric, with `extra` lines added to its spec.
fn config(name: &str, dir: &str, handler: &str, extra: &str) -> String {
    let python = common::venv_python("awslambdaric and boto3");
    let workdir = common::root().join(dir);
    format!(
        "functions:\n  - name: {name}\n    kind: process\n    params: {{ command: [{python}, -m, awslambdaric, {handler}], workdir: {workdir} }}\n{extra}",
        python = python.display(),
        workdir = workdir.display(),
    )
}

/// `config` for one of the misbehaving handlers in pipeline/tests/lambda.
fn behaviour(name: &str, handler: &str, extra: &str) -> String {
    config(name, "pipeline/tests/lambda", handler, extra)
}

async fn invoke(srv: &TestServer, f: &str, body: Value) -> (u16, Value) {
    let res = srv
        .client
        .post(format!("{}/v1/functions/{f}/invoke", srv.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, common::body_json(res).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_handler_writes_a_sum_of_every_upload_with_boto3() {
    let extra = "    triggers:\n      - s3: { bucket: uploads }\n    resources:\n      workers: { max: 2 }\n      batch: { max_size: 5, max_delay: 20ms }\n      timeout: 20s\n";
    let srv = start(&config(
        "sums",
        "examples/lambda/python",
        "handler.handler",
        extra,
    ))
    .await;
    let s3 = s3_client(&srv, "test-secret-key");
    s3.create_bucket().bucket("derived").send().await.ok();
    let keys: Vec<String> = (0..12)
        .map(|i| match i {
            0 => "docs/red flower+1.txt".to_string(),
            1 => "docs/été.txt".to_string(),
            _ => format!("docs/{i}.txt"),
        })
        .collect();
    let mut bodies = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let body = format!("object {i} ").repeat(i * 100 + 1).into_bytes();
        s3.put_object()
            .bucket("uploads")
            .key(key)
            .body(body.clone().into())
            .send()
            .await
            .unwrap();
        bodies.insert(key.clone(), body);
    }
    for (key, body) in &bodies {
        let made = wait_for(&s3, "derived", &format!("sums/{key}.json")).await;
        let made: Value = serde_json::from_slice(&made).unwrap();
        assert_eq!(
            made["key"],
            json!(key),
            "the key came through encoded and back"
        );
        assert_eq!(made["size"], json!(body.len()));
        let sum = format!("{:x}", sha2::Sha256::digest(body));
        assert_eq!(made["sha256"], json!(sum));
    }
    let dead = srv.json("/v1/dead-letters").await;
    assert_eq!(dead["items"], json!([]), "nothing failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_record_in_a_batch_of_five_fails_alone_with_the_handlers_message() {
    // `picky` raises for the bad record: the batch is tried again record by record. `reporting`
    // names it in batchItemFailures. Either way the four others succeed, once each.
    let extra = |prefix: &str| {
        format!(
            "    triggers:\n      - s3: {{ bucket: uploads, prefix: {prefix}/ }}\n    output: {{ bucket: derived, key: \"{prefix}/{{key}}.json\" }}\n    resources:\n      workers: {{ max: 1 }}\n      batch: {{ max_size: 5, max_delay: 1s }}\n      timeout: 20s\n      retries: {{ max: 0, backoff: 10ms }}\n"
        )
    };
    let mut yaml = behaviour("picky", "behaviours.picky", &extra("picky"));
    let second = behaviour("reporting", "behaviours.reporting", &extra("reporting"));
    yaml.push_str(second.trim_start_matches("functions:\n"));
    let srv = start(&yaml).await;
    let s3 = s3_client(&srv, "test-secret-key");
    s3.create_bucket().bucket("uploads").send().await.ok();
    for prefix in ["picky", "reporting"] {
        for i in 0..5 {
            let key = if i == 2 {
                format!("{prefix}/bad-{i}.txt")
            } else {
                format!("{prefix}/good-{i}.txt")
            };
            s3.put_object()
                .bucket("uploads")
                .key(&key)
                .body(b"x".to_vec().into())
                .send()
                .await
                .unwrap();
        }
    }
    let dead = dead_letters(&srv, 2).await;
    let by_fn: BTreeMap<String, &Value> = dead
        .iter()
        .map(|d| (d["function"].as_str().unwrap().to_string(), d))
        .collect();
    assert_eq!(by_fn.len(), 2, "{dead:?}");
    assert_eq!(by_fn["picky"]["key"], "picky/bad-2.txt");
    let reason = by_fn["picky"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("ValueError: cannot take picky/bad-2.txt"),
        "{reason}"
    );
    assert_eq!(by_fn["reporting"]["key"], "reporting/bad-2.txt");
    let reason = by_fn["reporting"]["reason"].as_str().unwrap();
    assert!(reason.contains("batchItemFailures"), "{reason}");
    for i in [0, 1, 3, 4] {
        wait_for(&s3, "derived", &format!("picky/picky/good-{i}.txt.json")).await;
    }
    assert!(
        common::object(&s3, "derived", "picky/picky/bad-2.txt.json")
            .await
            .is_none()
    );
    // `reporting` answered with its failure report alone: nothing worth writing for a record.
    let listed = s3
        .list_objects_v2()
        .bucket("derived")
        .prefix("reporting/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0), "{listed:?}");
    // `picky` wrote what it returned: the successful records' own answers.
    let one = wait_for(&s3, "derived", "picky/picky/good-0.txt.json").await;
    let one: Value = serde_json::from_slice(&one).unwrap();
    assert!(
        one["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("picky/good-0.txt"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_an_exit_and_an_init_failure_are_clear_and_the_next_call_gets_a_fresh_process() {
    let res = "    triggers:\n      - http: { path: /x }\n    resources:\n      workers: { max: 1 }\n      timeout: 3s\n";
    let mut yaml = behaviour("sleepy", "behaviours.sleepy", res);
    for (name, handler) in [
        ("exits", "behaviours.exits"),
        ("broken", "broken_init.handler"),
    ] {
        let spec = behaviour(name, handler, &res.replace("/x", &format!("/{name}")));
        yaml.push_str(spec.trim_start_matches("functions:\n"));
    }
    let srv = start(&yaml).await;

    let (s, first) = invoke(&srv, "sleepy", json!({ "sleep": 0 })).await;
    assert_eq!(s, 200, "{first}");
    let (s, late) = invoke(&srv, "sleepy", json!({ "sleep": 10 })).await;
    assert_eq!(s, 504, "{late}");
    // The caller's clock and the worker's stop at the same instant; either may say so first.
    let why = late["error"].as_str().unwrap();
    assert!(
        why.contains("timed out") || why.contains("timeout"),
        "{late}"
    );
    let (s, next) = invoke(&srv, "sleepy", json!({ "sleep": 0 })).await;
    assert_eq!(s, 200, "{next}");
    assert_ne!(
        next["pid"], first["pid"],
        "the stopped process was replaced"
    );

    let (s, first) = invoke(&srv, "exits", json!({})).await;
    assert_eq!(s, 200, "{first}");
    let (s, gone) = invoke(&srv, "exits", json!({ "exit": true })).await;
    assert_eq!(s, 500, "{gone}");
    let why = gone["error"].as_str().unwrap();
    assert!(
        why.contains("Runtime.ExitError") && why.contains("exit status: 3"),
        "{why}"
    );
    let (s, next) = invoke(&srv, "exits", json!({})).await;
    assert_eq!(s, 200, "{next}");
    assert_ne!(next["pid"], first["pid"]);

    for _ in 0..2 {
        let (s, broken) = invoke(&srv, "broken", json!({})).await;
        assert_eq!(s, 500, "{broken}");
        let why = broken["error"].as_str().unwrap();
        assert!(why.contains("Runtime.InitError"), "{why}");
        assert!(why.contains("the configuration is missing"), "{why}");
    }
    let text = common::metrics_text(&srv.client, &srv.base).await;
    let labels = r#"function="broken",reason="start_failed""#;
    let n = metric(&text, "weir_process_restarts_total", labels)
        .unwrap_or_else(|| panic!("no restart count for broken:\n{text}"));
    assert!(n >= 2.0, "{n} restarts:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_calls_are_served_by_at_most_max_warm_processes_that_keep_their_state() {
    let extra = "    triggers:\n      - http: { path: /who }\n    resources:\n      workers: { min: 1, max: 2, idle_after: 1h }\n      timeout: 20s\n";
    let srv = start(&behaviour("who", "behaviours.whoami", extra)).await;
    // min: 1 is warm before the first call.
    until("one warm process", async || {
        let text = common::metrics_text(&srv.client, &srv.base).await;
        let workers = metric(&text, "weir_process_workers", r#"function="who""#);
        (workers == Some(1.0)).then_some(())
    })
    .await;
    let mut answers = Vec::new();
    for round in 0..25 {
        let four = (0..4).map(|i| invoke(&srv, "who", json!({ "i": round * 4 + i })));
        answers.extend(futures::future::join_all(four).await);
    }
    let mut most_calls: BTreeMap<u64, u64> = BTreeMap::new();
    for (status, a) in &answers {
        assert_eq!(*status, 200, "{a}");
        assert_eq!(
            a["pid"], a["init_pid"],
            "init ran in the process that serves"
        );
        let pid = a["pid"].as_u64().unwrap();
        let calls = a["calls"].as_u64().unwrap();
        let seen = most_calls.entry(pid).or_default();
        *seen = (*seen).max(calls);
    }
    assert!(most_calls.len() <= 2, "{most_calls:?}");
    assert_eq!(
        most_calls.values().sum::<u64>(),
        100,
        "every call counted by the global state of the process that served it"
    );
    let a = &answers[0].1;
    assert_eq!(a["function"], "who");
    assert_eq!(
        a["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:who"
    );
    let left = a["deadline_left_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 20_000, "{left}");
    let env: BTreeSet<String> = serde_json::from_value(a["env"].clone()).unwrap();
    for k in [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_LAMBDA_FUNCTION_NAME",
    ] {
        assert!(env.contains(k), "{k} missing from {env:?}");
    }
    assert!(
        !env.iter()
            .any(|k| k.starts_with("CARGO") || k.starts_with("RUST")),
        "Weir's own environment leaked: {env:?}"
    );
    // A worker's Runtime API port serves that API alone, and only the worker's own invocation.
    let api = a["runtime_api"].as_str().unwrap();
    let res = srv
        .client
        .get(format!("http://{api}/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = srv
        .client
        .post(format!(
            "http://{api}/2018-06-01/runtime/invocation/not-yours/response"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert_eq!(
        common::body_json(res).await["errorType"],
        "InvalidRequestID"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_dies_at_start_is_restarted_with_a_growing_backoff_not_in_a_hot_loop() {
    let yaml = "functions:\n  - name: crashy\n    kind: process\n    params: { command: [sh, -c, 'echo starting; exit 7'] }\n    triggers:\n      - http: { path: /crashy }\n    resources:\n      workers: { max: 1 }\n      timeout: 1s\n";
    let srv = start(yaml).await;
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < Duration::from_secs(2) {
        let (s, a) = invoke(&srv, "crashy", json!({})).await;
        assert!(s == 500 || s == 504, "{s} {a}");
        answers.push(a["error"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        answers
            .iter()
            .any(|a| a.contains("Runtime.ExitError") && a.contains("exit status: 7")),
        "{answers:?}"
    );
    let text = common::metrics_text(&srv.client, &srv.base).await;
    let starts = metric(&text, "weir_process_starts_total", r#"function="crashy""#)
        .unwrap_or_else(|| panic!("no start count:\n{text}"));
    // 100 ms, 200, 400, 800…: about five starts in two seconds, however many calls came.
    assert!(
        (2.0..=7.0).contains(&starts),
        "{starts} starts for {} calls",
        answers.len()
    );
    assert!(
        answers.len() as f64 > starts,
        "calls beyond the backoff fail fast"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_minimum_that_keeps_dying_is_restarted_with_the_same_backoff() {
    // No calls at all: the fleet itself keeps `min` warm, and must not restart it in a loop.
    let yaml = "functions:\n  - name: warmcrash\n    kind: process\n    params: { command: [sh, -c, 'exit 9'] }\n    triggers:\n      - http: { path: /warmcrash }\n    resources:\n      workers: { min: 1, max: 1, idle_after: 100ms }\n      timeout: 1s\n";
    let srv = start(yaml).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = common::metrics_text(&srv.client, &srv.base).await;
    let count = |name: &str| metric(&text, name, r#"function="warmcrash""#).unwrap_or(0.0);
    let starts = count("weir_process_starts_total");
    assert!(
        (2.0..=7.0).contains(&starts),
        "{starts} starts in 2 s:\n{text}"
    );
    assert!(
        count("weir_process_restarts_total") >= starts - 1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_call_comes_as_an_api_gateway_event_and_its_answer_is_the_reply() {
    let extra =
        "    triggers:\n      - http: { path: /shaped }\n    resources:\n      timeout: 20s\n";
    let srv = start(&behaviour("shaped", "behaviours.shaped", extra)).await;
    let res = srv
        .client
        .post(format!("{}/shaped?x=1", srv.base))
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 3, 250])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers()["content-type"], "application/octet-stream");
    assert_eq!(res.headers()["x-path"], "/shaped");
    assert_eq!(res.bytes().await.unwrap().to_vec(), vec![250u8, 3, 2, 1]);
    // The envelope is still there when asked for.
    let res = srv
        .client
        .post(format!("{}/shaped?return=all", srv.base))
        .body(vec![7u8])
        .send()
        .await
        .unwrap();
    let v = common::body_json(res).await;
    assert_eq!(v["function"], "shaped");
    assert_eq!(v["summary"]["statusCode"], 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_processes_stop_after_idle_after() {
    let extra = "    triggers:\n      - http: { path: /who }\n    resources:\n      workers: { max: 2, idle_after: 300ms }\n      timeout: 20s\n";
    let srv = start(&behaviour("who", "behaviours.whoami", extra)).await;
    let (s, a) = invoke(&srv, "who", json!({})).await;
    assert_eq!(s, 200, "{a}");
    until("no process left", async || {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = common::metrics_text(&srv.client, &srv.base).await;
        let workers = metric(&text, "weir_process_workers", r#"function="who""#);
        (workers == Some(0.0)).then_some(())
    })
    .await;
    let listed = srv.json("/v1/functions").await;
    assert_eq!(
        listed["functions"][0]["instances"],
        json!({ "state": "cold", "idle": 0, "all": 0 }),
        "{listed}"
    );
    let (s, b) = invoke(&srv, "who", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_ne!(
        a["pid"], b["pid"],
        "a new process after the idle one stopped"
    );
    let listed = srv.json("/v1/functions").await;
    assert_eq!(
        listed["functions"][0]["instances"]["state"], "idle",
        "a process up and waiting: {listed}"
    );
}

#[test]
fn a_command_that_cannot_run_is_a_config_error() {
    let yaml = "functions:\n  - name: f\n    kind: process\n    params: { command: [no-such-runtime-x, app.handler] }\n";
    let e = weir_pipeline::config::Config::parse(
        std::path::Path::new("weir.yaml"),
        yaml,
        &weir_gpu::Inventory::cpu_only("tests"),
    )
    .err()
    .expect("refused");
    let e = e.to_string();
    assert!(
        e.contains("params.command") && e.contains("not found in PATH"),
        "{e}"
    );
}

#[test]
fn the_lambda_example_config_loads() {
    common::venv_python("awslambdaric");
    let path = common::root().join("examples/lambda/weir.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap();
    let cfg =
        weir_pipeline::config::Config::parse(&path, &yaml, &weir_gpu::Inventory::cpu_only("tests"))
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.functions[0].spec.name, "sums");
    assert_eq!(cfg.functions[0].function.kind(), "process");
}
