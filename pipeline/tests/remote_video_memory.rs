//! A 200 MB video in a remote S3 store is turned into key frames by `weir serve` (the real
//! binary, `store: s3`, its keys from the AWS environment) while its resident memory grows by far less than the video: the object
//! is spooled to a temporary file and read by offset, never held whole, and the packets FFmpeg
//! reads are released as it goes.

mod common;

use std::process::Command;

use common::*;

/// Resident memory of `pid` in bytes: now (`VmRSS`) or at its peak (`VmHWM`).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// About 200 MB of 720p H.264: lossless, over noise, so it cannot compress; a key frame a second.
fn big_video(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("big.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
        ])
        .args(["-t", "5", "-vf", "noise=alls=60:allf=t", "-c:v", "libx264"])
        .args(["-preset", "ultrafast", "-qp", "0", "-g", "25"])
        .arg(&out)
        .status()
        .expect("the ffmpeg CLI (./test.sh installs it)");
    assert!(status.success());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200mb_remote_video_is_streamed_not_held() {
    let remote = start("functions: []").await;
    let s3 = s3_client(&remote, "test-secret-key");
    let dir = tempfile::tempdir().unwrap();
    let video = big_video(dir.path());
    let size = std::fs::metadata(&video).unwrap().len();
    assert!(size > 180_000_000, "the video is only {size} bytes");
    let config = format!(
        r#"
store: {{ kind: s3, endpoint: "http://{}" }}
functions:
  - name: frames
    kind: keyframes
    params: {{ mode: keyframes, format: jpeg, max_width: 320, max_frames: 50 }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .mp4 }}
    output: {{ bucket: derived, key: "keyframes/{{key}}/{{index}}.jpg" }}
    resources: {{ max_input: 300MB, timeout: 120s }}
"#,
        remote.running.s3_addr().unwrap()
    );
    std::fs::write(dir.path().join("weir.yaml"), config).unwrap();
    let port = free_port();
    // No keys in the config: the AWS credentials chain finds them in the environment.
    let env = [
        ("AWS_ACCESS_KEY_ID", "test-access"),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-key"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let mut weir = serve_binary(dir.path(), port, &[], &env);
    let pid = weir.id();

    let body = aws_sdk_s3::primitives::ByteStream::from_path(&video)
        .await
        .unwrap();
    s3.put_object()
        .bucket("uploads")
        .key("big.mp4")
        .body(body)
        .send()
        .await
        .unwrap();
    let before = memory(pid, "VmRSS");
    let res = notify_port(port, &[s3_record("minio:s3", "big.mp4")]).await;
    assert_eq!(res.status(), 200);
    let manifest = wait_for(&s3, "derived", "keyframes/big.mp4/manifest.json").await;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(
        manifest["frames"].as_array().unwrap().len(),
        5,
        "{manifest}"
    );
    let peak = memory(pid, "VmHWM");
    let _ = weir.kill();
    let _ = weir.wait();
    let grew = peak.saturating_sub(before);
    eprintln!("resident {before} before, peak {peak}: grew {grew} for a {size}-byte video");
    // What it grows by is the decoder's (frame threads, each with its reference pictures) and
    // the transfer buffers, whatever the video's length: ~70 MB here. Holding the object, or
    // leaking its packets (as a reused FFmpeg packet once did), takes more than the video.
    assert!(
        grew < size / 2,
        "grew by {grew} bytes for a {size}-byte video"
    );
}
