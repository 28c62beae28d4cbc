//! The real binary: `weir serve` from a config file, `weir invoke` against it, SIGTERM to stop.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WEIR: &str = env!("CARGO_BIN_EXE_weir");

#[test]
fn serve_invoke_and_stop_with_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(WEIR)
        .args(["serve", "--config"])
        .arg(root().join("examples/weir.yaml"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--s3-listen",
            "127.0.0.1:0",
        ])
        .env_remove("WEIR_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The banner says where to send work once the port is bound.
    let banner = banner(&mut server);
    assert!(
        banner.contains(&format!("http://127.0.0.1:{port}")),
        "{banner}"
    );
    assert!(dir.path().join("data").is_dir(), "data dir not created");

    let outdir = dir.path().join("out");
    let invoked = Command::new(WEIR)
        .args(["invoke", "thumbs"])
        .arg(root().join("fixtures/images/mountains_1920x1440.jpg"))
        .arg("--out")
        .arg(&outdir)
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        invoked.status.success(),
        "{}",
        String::from_utf8_lossy(&invoked.stderr)
    );
    for (name, size) in [("256.jpg", (256, 192)), ("1024.jpg", (1024, 768))] {
        let img = image::open(outdir.join(name)).unwrap();
        assert_eq!((img.width(), img.height()), size, "{name}");
    }

    // A bad input through the CLI: a non-zero exit with the server's reason.
    let bad = Command::new(WEIR)
        .args(["invoke", "thumbs"])
        .arg(root().join("fixtures/bad/truncated_40pct.jpg"))
        .args(["--server", &format!("http://127.0.0.1:{port}"), "--out"])
        .arg(&outdir)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("truncated"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "weir did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "weir exited with {status} on SIGTERM");
}

#[test]
fn config_mistakes_stop_serve_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("weir.yaml");
    std::fs::write(
        &cfg,
        "functions:\n  - name: t\n    kind: thumbnail\n    params: { sizes: [256], qualiy: 3 }\n",
    )
    .unwrap();
    let out = Command::new(WEIR)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("weir.yaml: functions[0].params.qualiy: unknown field `qualiy`"),
        "{err}"
    );

    // A public address without a token is refused unless --insecure.
    std::fs::write(&cfg, "functions: []\n").unwrap();
    let out = Command::new(WEIR)
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(["--http-listen", "0.0.0.0:0"])
        .env_remove("WEIR_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("without a token"));
}
