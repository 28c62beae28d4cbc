//! `weir bench` as a user runs it (the built binary) against a server in this process: a short
//! grid over a model and over a function, results.json checked against its schema, the table
//! and plots written, throughput beside a plain client loop, `compare`, and the bad inputs.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn config() -> String {
    format!(
        r#"
models: {}
functions:
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 3 }}
    resources: {{ batch: {{ max_size: 8, max_delay: 2ms }}, timeout: 60s }}
"#,
        root().join("examples/models").display()
    )
}

/// `weir bench ARGS` against `base`: its exit status, stdout and stderr.
async fn bench(base: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("bench")
        .args(args)
        .env("WEIR_URL", base)
        .env_remove("WEIR_TOKEN");
    // The server runs on this test's runtime: wait for the child off its worker threads.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("the weir binary runs"))
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn results(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// results.json against docs/bench-results.schema.json, by check-jsonschema (./test.sh puts it
/// in .venv): a schema checked by a tool other than the writer.
fn validate(dir: &Path) {
    let tool = root().join(".venv/bin/check-jsonschema");
    assert!(
        tool.exists(),
        "check-jsonschema is needed: run ./test.sh (it fills .venv)"
    );
    let out = std::process::Command::new(tool)
        .arg("--schemafile")
        .arg(root().join("docs/bench-results.schema.json"))
        .arg(dir.join("results.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn point(r: &Value, batch: u64, concurrency: u64) -> &Value {
    r["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["batch"] == batch && p["concurrency"] == concurrency)
        .unwrap_or_else(|| panic!("no point batch {batch} concurrency {concurrency}: {r}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grid_over_a_model_and_a_function_writes_results_a_table_and_plots() {
    let _turn = LOADED.lock().await;
    let srv = start(&config()).await;
    let out = tempfile::tempdir().unwrap();
    let (m, f) = (out.path().join("model"), out.path().join("function"));
    let (ok, stdout, stderr) = bench(
        &srv.base,
        &[
            "--model",
            "identity_fp32",
            "--shape",
            "INPUT0:16",
            "--batch",
            "1,4",
            "--concurrency",
            "1,3",
            "--warmup",
            "200ms",
            "--duration",
            "700ms",
            "--out",
            m.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    validate(&m);
    let r = results(&m);
    assert_eq!(r["target"]["kind"], "model");
    assert_eq!(r["records"].as_array().unwrap().len(), 4);
    for (b, c) in [(1, 1), (1, 3), (4, 1), (4, 3)] {
        let p = point(&r, b, c);
        assert_eq!(p["device"], "cpu");
        assert_eq!(p["errors"], 0, "{p}");
        // Throughput counts inputs: requests × batch over the window.
        let thr = p["throughput"].as_f64().unwrap();
        let requests = p["requests"].as_f64().unwrap();
        assert!((thr - requests * b as f64 / 0.7).abs() < 1e-6 * thr, "{p}");
        let l = &p["latency_ms"];
        assert!(
            l["p50"].as_f64().unwrap() <= l["p99"].as_f64().unwrap(),
            "{p}"
        );
        assert!(p["server"]["compute_ms"].as_f64().is_some(), "{p}");
    }
    let table = std::fs::read_to_string(m.join("results.md")).unwrap();
    assert_eq!(table.matches("\n| cpu |").count(), 4, "{table}");
    assert!(stdout.contains("| cpu | 4 | 3 |"), "{stdout}");
    for plot in ["throughput.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(m.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("cpu batch 4"),
            "{plot}"
        );
    }

    let photos = tempfile::tempdir().unwrap();
    for name in ["rocket_640x427.jpg", "coffee_cmyk_600x400.jpg"] {
        std::fs::write(photos.path().join(name), fixture(&format!("images/{name}"))).unwrap();
    }
    let (ok, _, stderr) = bench(
        &srv.base,
        &[
            "--function",
            "labels",
            "--input",
            photos.path().to_str().unwrap(),
            "--concurrency",
            "2",
            "--warmup",
            "300ms",
            "--duration",
            "1s",
            "--out",
            f.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{stderr}");
    validate(&f);
    let r = results(&f);
    assert_eq!(r["config"]["inputs"], 2);
    let p = point(&r, 1, 2);
    assert!(p["requests"].as_u64().unwrap() > 0, "{p}");
    assert!(p["server"]["queue_ms"].as_f64().is_some(), "{p}");
    assert!(p["server"]["compute_ms"].as_f64().unwrap() > 0.0, "{p}");

    // compare: a run beside itself is 1.00× everywhere; a model beside a function is refused.
    let (a, b) = (m.join("results.json"), f.join("results.json"));
    let (ok, stdout, stderr) = bench(
        &srv.base,
        &["compare", a.to_str().unwrap(), a.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("| 1.00× |").count(), 8, "{stdout}");
    let (ok, _, stderr) = bench(
        &srv.base,
        &["compare", a.to_str().unwrap(), b.to_str().unwrap()],
    )
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("the targets differ: model \"identity_fp32\" against function \"labels\""),
        "{stderr}"
    );
}

/// The tests that load the server take turns, so the one comparing two loads is not measuring
/// the others.
static LOADED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `concurrency` clients posting `body` to `url` in a closed loop: answers per second inside a
/// window opening after `warm`. Written apart from `weir bench`, as an independent check.
async fn plain_loop(srv: &TestServer, url: &str, body: &[u8], concurrency: usize) -> f64 {
    let (warm, window) = (Duration::from_secs(1), Duration::from_secs(2));
    let opens = Instant::now() + warm;
    let closes = opens + window;
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, body) = (srv.client.clone(), url.to_string(), body.to_vec());
            tokio::spawn(async move {
                let mut n = 0u32;
                while Instant::now() < closes {
                    let res = client.post(&url).body(body.clone()).send().await.unwrap();
                    assert_eq!(res.status(), 200);
                    res.bytes().await.unwrap();
                    let now = Instant::now();
                    n += u32::from(now >= opens && now < closes);
                }
                n
            })
        })
        .collect();
    let mut done = 0;
    for c in clients {
        done += c.await.unwrap();
    }
    f64::from(done) / window.as_secs_f64()
}

/// The classifier's whole path (JPEG in, labels out) at concurrency 2: weir bench's throughput
/// against a client loop written here, on the same server, alternated twice (the machine's
/// speed drifts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_throughput_matches_a_plain_client_loop() {
    let _turn = LOADED.lock().await;
    let srv = start(&config()).await;
    let photos = tempfile::tempdir().unwrap();
    let photo = fixture("images/rocket_640x427.jpg");
    std::fs::write(photos.path().join("rocket.jpg"), &photo).unwrap();
    let url = format!("{}/v1/functions/labels/invoke", srv.base);
    let (mut weir, mut plain) = (0.0, 0.0);
    for _ in 0..2 {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        let input = photos.path().to_str().unwrap();
        let args = [
            "--function",
            "labels",
            "--input",
            input,
            "--concurrency",
            "2",
            "--warmup",
            "1s",
            "--duration",
            "2s",
            "--out",
            dir,
        ];
        let (ok, _, stderr) = bench(&srv.base, &args).await;
        assert!(ok, "{stderr}");
        weir += point(&results(out.path()), 1, 2)["throughput"]
            .as_f64()
            .unwrap();
        plain += plain_loop(&srv, &url, &photo, 2).await;
    }
    let ratio = weir / plain;
    eprintln!("weir bench / plain loop: {ratio:.3}");
    assert!(
        (0.8..=1.25).contains(&ratio),
        "weir bench {:.1}/s, plain loop {:.1}/s",
        weir / 2.0,
        plain / 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_errors() {
    let _turn = LOADED.lock().await;
    let srv = start(&config()).await;
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (
            &["--model", "nope", "--out", o],
            "model \"nope\": the server answered 404",
        ),
        (
            &[
                "--function",
                "labels",
                "--input",
                empty.path().to_str().unwrap(),
                "--out",
                o,
            ],
            "no input files in",
        ),
        (
            &["--function", "nope", "--input", "Cargo.toml", "--out", o],
            "no function \"nope\" (it has: labels)",
        ),
        (
            &["--model", "identity_fp32", "--device", "cuda:0", "--out", o],
            "cuda:0",
        ),
        (
            &["--model", "identity_fp32", "--batch", "65", "--out", o],
            "batch 65 is over model \"identity_fp32\"'s max_batch_size 64",
        ),
        (
            &["--model", "identity_fp32", "--out", o],
            "give its sizes after the batch with --shape INPUT0:N",
        ),
        (
            &["--function", "labels", "--out", o],
            "--function needs --input",
        ),
    ];
    for (args, why) in cases {
        let (ok, _, stderr) = bench(&srv.base, args).await;
        assert!(!ok, "{args:?} succeeded");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    assert!(!out.path().join("results.json").exists());
}
