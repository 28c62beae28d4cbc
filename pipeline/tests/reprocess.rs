//! Reprocess jobs with the real binary and the `weir reprocess` command: 2,000 objects, the
//! server SIGKILLed half-way, the job going on after the restart; then runs that skip what is up
//! to date, redo what a changed spec made stale, and redo everything with `--force`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::*;

const N: usize = 2000;

/// `sizes` changes the spec's hash, and so what is up to date.
fn config(sizes: &str) -> String {
    format!(
        r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [{sizes}] }}
    output: {{ bucket: derived, key: "t/{{key}}/{{size}}.jpg" }}
    resources: {{ workers: {{ max: 2 }}, batch: {{ max_size: 4 }}, timeout: 60s }}
"#
    )
}

const KEYS: [(&str, &str); 2] = [
    ("WEIR_S3_ACCESS_KEY", "re"),
    ("WEIR_S3_SECRET_KEY", "re-secret"),
];

fn serve(dir: &Path, port: u16, s3_port: u16, sizes: &str) -> Child {
    std::fs::write(dir.join("weir.yaml"), config(sizes)).unwrap();
    let s3 = format!("127.0.0.1:{s3_port}");
    let env = [
        KEYS[0],
        KEYS[1],
        ("WEIR_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,weir_pipeline::dispatch=debug"),
    ];
    serve_binary(dir, port, &["--s3-listen", &s3], &env)
}

/// `weir reprocess` against the server on `port`, its output kept.
fn reprocess(port: u16, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["reprocess", "--function", "thumbs", "--bucket", "uploads"])
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .args(extra)
        .env_remove("WEIR_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (bool, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (status.success(), text(stdout), text(stderr))
}

/// How many times the log says each key ran to completion.
fn runs(log: &Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["fields"]["message"] == "done" {
            let key = v["fields"]["key"].as_str().unwrap_or_default().to_string();
            *out.entry(key).or_default() += 1;
        }
    }
    out
}

async fn outputs(s3: &aws_sdk_s3::Client, size: &str) -> usize {
    let mut n = 0;
    let mut pages = s3
        .list_objects_v2()
        .bucket("derived")
        .prefix("t/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        let suffix = format!("/{size}.jpg");
        n += page
            .contents()
            .iter()
            .filter(|o| o.key().unwrap_or_default().ends_with(&suffix))
            .count();
    }
    n
}

fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_half_way_goes_on_after_restart_and_reruns_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (port, s3_port) = (free_port(), free_port());
    let node = serve(dir.path(), port, s3_port, "16");
    let s3 = s3_client_at(s3_port, KEYS[0].1, KEYS[1].1);
    let photo = fixture("images/chelsea_tiny_32x21.jpg");
    upload_many(&s3, "uploads", N, &photo, |i| format!("p/{i:04}.jpg")).await;

    // Paced so that the kill lands half-way.
    let cli = reprocess(port, &["--rate", "500/s"]);
    let http = reqwest::Client::new();
    let jobs = format!("http://127.0.0.1:{port}/v1/jobs");
    until("half the job finished", async || {
        let res = http.get(&jobs).send().await.ok()?;
        let all: serde_json::Value = serde_json::from_slice(&res.bytes().await.ok()?).ok()?;
        let c = &all["jobs"][0]["counts"];
        let finished = c["processed"].as_u64()? + c["skipped"].as_u64()?;
        (finished >= N as u64 / 3).then_some(())
    })
    .await;
    kill(node);
    let before = runs(&dir.path().join("weir.log")).len();
    assert!(before < N, "killed before the end ({before} done)");
    let node = serve(dir.path(), port, s3_port, "16");
    let (ok, out, err) = finish(cli);
    assert!(ok, "the command exits 0 once the job ends: {out}\n{err}");
    assert!(err.contains("progress "), "progress lines: {err}");
    let log = std::fs::read_to_string(dir.path().join("weir.log")).unwrap();
    assert!(
        log.contains("resuming a reprocess job"),
        "the restart took the job up"
    );
    assert!(
        out.contains(&format!("processed {N}, skipped 0 (up to date), failed 0")),
        "{out}"
    );
    assert_eq!(outputs(&s3, "16").await, N, "every output");
    let ran = runs(&dir.path().join("weir.log"));
    assert_eq!(ran.len(), N, "every object ran");
    let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
    // Only what was in flight at the kill (the workers' two batches of four) runs again.
    assert!(twice.len() <= 8, "finished objects redone: {twice:?}");

    // Again: everything is up to date.
    let (ok, out, err) = finish(reprocess(port, &[]));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("processed 0, skipped {N}")), "{out}");
    let dry = finish(reprocess(port, &["--dry-run"]));
    assert!(
        dry.1.contains(&format!("0 would run, {N} up to date")),
        "{dry:?}"
    );

    // A changed spec makes every output stale.
    kill(node);
    let node = serve(dir.path(), port, s3_port, "24");
    let dry = finish(reprocess(port, &["--dry-run", "--prefix", "p/00"]));
    assert!(dry.1.contains("100 would run, 0 up to date"), "{dry:?}");
    let (ok, out, err) = finish(reprocess(port, &[]));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("processed {N}, skipped 0")), "{out}");
    assert_eq!(outputs(&s3, "24").await, N);
    let (ok, out, _) = finish(reprocess(port, &["--force", "--prefix", "p/01"]));
    assert!(ok && out.contains("processed 100, skipped 0"), "{out}");
    kill(node);
}
