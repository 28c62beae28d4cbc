//! boto3, the S3 client most tools are built on, against the built-in endpoint:
//! `tests/python/s3_boto3.py` runs with the Python that `./test.sh` prepares (`.venv` with
//! boto3), or `WEIR_PYTHON`. Its upload to `uploads` must become a thumbnail.

mod common;

use common::*;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_and_s3transfer_get_what_s3_promises() {
    let srv = start(CONFIG).await;
    let script = root().join("pipeline/tests/python/s3_boto3.py");
    let mut cmd = std::process::Command::new(venv_python("boto3"));
    cmd.arg(&script)
        .env(
            "WEIR_S3",
            format!("http://{}", srv.running.s3_addr().unwrap()),
        )
        .env("WEIR_S3_KEY", "test-access")
        .env("WEIR_S3_SECRET", "test-secret-key")
        .env(
            "WEIR_PHOTO",
            root().join("fixtures/images/rocket_640x427.jpg"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_CONFIG_FILE");
    // The server runs on this runtime: wait for the script off its threads.
    let run = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{out}\n{err}");
    for check in [
        "keys up to 1024 bytes",
        "multipart",
        "s3transfer upload and download",
        "paginated listings",
        "presigned urls",
        "request ids",
        "uploaded a photo",
    ] {
        assert!(
            out.contains(&format!("ok {check}\n")),
            "{check} missing:\n{out}"
        );
    }
    let c = s3_client(&srv, "test-secret-key");
    let thumb = wait_for(&c, "derived", "thumbs/from boto3/photo é.jpg/256.jpg").await;
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 256);
}
