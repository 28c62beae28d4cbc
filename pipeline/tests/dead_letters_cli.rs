//! `weir dead-letters` against a running `weir serve`: uploads refused by the function's limit
//! are listed and shown; after the limit is raised (a restart with the new spec) retrying one,
//! then all, runs them through the current spec; purging one and a function's removes them;
//! unknown ids and a purge that names nothing are refused with the reason.

mod common;

use std::path::Path;

use common::*;

const KEYS: [(&str, &str); 2] = [
    ("WEIR_S3_ACCESS_KEY", "dl"),
    ("WEIR_S3_SECRET_KEY", "dl-secret"),
];

fn config(max_input: &str) -> String {
    format!(
        r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: {{ sizes: [16] }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .jpg }}
    output: {{ bucket: derived, key: "t/{{key}}/{{size}}.jpg" }}
    resources: {{ max_input: {max_input} }}
"#
    )
}

fn serve(dir: &Path, s3_port: u16, max_input: &str) -> Node {
    let s3 = format!("127.0.0.1:{s3_port}");
    Node::serve(dir, &config(max_input), &["--s3-listen", &s3], &KEYS)
}

/// `weir dead-letters ARGS` against the node: success, stdout, stderr.
fn cli(node: &Node, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("dead-letters")
        .args(args)
        .args(["--server", &format!("http://127.0.0.1:{}", node.port)])
        .env_remove("WEIR_TOKEN")
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// The listed letters' lines once there are `n`.
async fn listed(node: &Node, n: usize) -> Vec<String> {
    until(&format!("{n} dead letters listed"), async || {
        let (ok, out, err) = cli(node, &["list"]);
        assert!(ok, "{err}");
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        (lines.len() == n).then_some(lines)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_shown_retried_through_the_current_spec_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let s3_port = free_port();
    let node = serve(dir.path(), s3_port, "100");
    let s3 = s3_client_at(s3_port, KEYS[0].1, KEYS[1].1);
    let photo = fixture("images/chelsea_tiny_32x21.jpg");
    for i in 0..3 {
        let body = aws_sdk_s3::primitives::ByteStream::from(photo.clone());
        let put = s3.put_object().bucket("uploads").key(format!("p/{i}.jpg"));
        put.body(body).send().await.unwrap();
    }
    let lines = listed(&node, 3).await;
    assert!(lines.iter().all(|l| l.contains("too_large")), "{lines:?}");
    let id = lines[0].split_whitespace().next().unwrap().to_string();
    let (ok, shown, _) = cli(&node, &["show", &id]);
    assert!(ok);
    let letter: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(letter["function"], "thumbs");
    assert_eq!(letter["event"]["object"]["bucket"], "uploads");
    assert!(
        letter["reason"].as_str().unwrap().contains("limit"),
        "{letter}"
    );
    let key = letter["key"].as_str().unwrap().to_string();

    // The spec changes; a retry runs through the new one.
    node.stop();
    let node = serve(dir.path(), s3_port, "1MB");
    let s3 = s3_client_at(s3_port, KEYS[0].1, KEYS[1].1);
    let (ok, out, err) = cli(&node, &["retry", &id]);
    assert!(ok && out.contains("retried 1"), "{out}{err}");
    wait_for(&s3, "derived", &format!("t/{key}/16.jpg")).await;
    listed(&node, 2).await;
    let (ok, out, _) = cli(&node, &["retry", "--all", "--function", "thumbs"]);
    assert!(ok && out.contains("retried 2"), "{out}");
    for i in 0..3 {
        wait_for(&s3, "derived", &format!("t/p/{i}.jpg/16.jpg")).await;
    }
    listed(&node, 0).await;

    // Not a picture: dead again on every retry, so purged instead.
    for name in ["junk-1.jpg", "junk-2.jpg"] {
        let put = s3.put_object().bucket("uploads").key(name);
        put.body(b"not a picture".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let lines = listed(&node, 2).await;
    assert!(lines.iter().all(|l| l.contains("bad_input")), "{lines:?}");
    let (ok, _, err) = cli(&node, &["purge"]);
    assert!(!ok && err.contains("say what to purge"), "{err}");
    let first = lines[0].split_whitespace().next().unwrap();
    let (ok, out, _) = cli(&node, &["purge", first]);
    assert!(ok && out.contains("purged 1"), "{out}");
    let (ok, out, _) = cli(&node, &["purge", "--function", "thumbs"]);
    assert!(ok && out.contains("purged 1"), "{out}");
    listed(&node, 0).await;

    for args in [["show", "999"], ["retry", "999"]] {
        let (ok, _, err) = cli(&node, &args);
        assert!(!ok && err.contains("no dead letter 999"), "{args:?}: {err}");
    }
    let (ok, _, err) = cli(&node, &["purge", "999"]);
    assert!(!ok && err.contains("404"), "{err}");
    node.stop();
}
