//! Videos uploaded with the AWS SDK become their key frames and a manifest in `derived`; the
//! hostile videos end in the dead letters with their reasons; `POST .../invoke` with a video body
//! answers with the manifest.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::*;
use serde_json::Value;

const CONFIG: &str = r#"
functions:
  - name: keyframes
    kind: keyframes
    params: { mode: keyframes, max_width: 640 }
    triggers:
      - s3: { bucket: uploads, suffix: [.mp4, .mov, .mkv, .webm, .m4a] }
    output: { bucket: derived, key: "keyframes/{key}/{index}.jpg" }
    resources: { timeout: 60s, max_input: 2GB, batch: { max_size: 1 } }
  - name: small-videos
    kind: keyframes
    params: {}
    resources: { max_input: 100KB }
"#;

fn golden_videos() -> Vec<Value> {
    let v: Value = serde_json::from_slice(&fixture("golden/videos.json")).unwrap();
    v["videos"].as_array().unwrap().clone()
}

async fn put(c: &aws_sdk_s3::Client, key: &str, bytes: Vec<u8>) {
    c.put_object()
        .bucket("uploads")
        .key(key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaded_videos_become_their_key_frames_and_a_manifest() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    for v in golden_videos() {
        let file = v["file"].as_str().unwrap();
        put(&c, &format!("in/{file}"), fixture(file)).await;
    }
    for v in golden_videos() {
        let file = v["file"].as_str().unwrap();
        let folder = format!("keyframes/in/{file}");
        let manifest: Value = serde_json::from_slice(
            &wait_for(&c, "derived", &format!("{folder}/manifest.json")).await,
        )
        .unwrap();
        let pts: Vec<f64> = manifest["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["pts"].as_f64().unwrap())
            .collect();
        let want: Vec<f64> = serde_json::from_value(v["keyframe_pts_time"].clone()).unwrap();
        assert_eq!(pts, want, "{file}: key frames as ffprobe lists them");
        let (w, h) = (
            v["displayed_width_height"][0].as_f64().unwrap(),
            v["displayed_width_height"][1].as_f64().unwrap(),
        );
        let expect_w = w.min(640.0) as u32;
        let expect_h = (h * f64::from(expect_w) / w).round() as u32;
        // The manifest is written last: once it is there, every picture is, without waiting.
        for f in manifest["frames"].as_array().unwrap() {
            let key = format!("{folder}/{}.jpg", f["index"]);
            let bytes = object(&c, "derived", &key)
                .await
                .unwrap_or_else(|| panic!("{key} is missing"));
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (expect_w, expect_h), "{key}");
            assert_eq!(
                (f["width"].as_u64(), f["height"].as_u64()),
                (Some(expect_w as u64), Some(expect_h as u64))
            );
        }
        assert_eq!(manifest["codec"], v["codec"], "{file}");
        assert_eq!(manifest["truncated"], false, "{file}");
    }
    let dead = srv.json("/v1/dead-letters").await;
    assert_eq!(dead["items"].as_array().unwrap().len(), 0, "{dead}");
}

/// The hostile videos through the upload path: each a permanent failure with its reason, tried
/// once; a file cut inside its data gives what came before the cut; the worker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_videos_end_in_the_dead_letters_with_reasons() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let cases = [
        ("mp4_claims_15360x15360.mp4", "15360x15360"),
        ("mp4_claims_65520x65520.mp4", "65520x65520"),
        ("mp4_truncated_no_moov.mp4", "not a video"),
        ("zero_bytes.mp4", "empty"),
        ("garbage_random.mp4", "not a video"),
        ("audio_only.m4a", "no video stream"),
        ("webm_truncated_10pct.webm", "truncated"),
    ];
    for (name, _) in cases {
        put(&c, &format!("bad/{name}"), fixture(&format!("bad/{name}"))).await;
    }
    put(
        &c,
        "bad/mp4_truncated_mid_mdat.mp4",
        fixture("bad/mp4_truncated_mid_mdat.mp4"),
    )
    .await;
    let dead = until("every hostile video dead-lettered", async || {
        let items = srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .clone();
        (items.len() >= cases.len()).then_some(items)
    })
    .await;
    assert_eq!(dead.len(), cases.len(), "{dead:?}");
    for (name, says) in cases {
        let item = dead
            .iter()
            .find(|i| i["key"] == format!("bad/{name}"))
            .unwrap_or_else(|| panic!("{name} is not in the dead letters: {dead:?}"));
        let reason = item["reason"].as_str().unwrap();
        assert_eq!(item["kind"], "bad_input", "{name}: {reason}");
        assert_eq!(
            item["attempts"], 1,
            "{name}: a permanent failure is not retried"
        );
        assert!(
            reason.contains(says),
            "{name}: {reason:?} should say {says:?}"
        );
    }
    let cut: Value = serde_json::from_slice(
        &wait_for(
            &c,
            "derived",
            "keyframes/bad/mp4_truncated_mid_mdat.mp4/manifest.json",
        )
        .await,
    )
    .unwrap();
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["frames"].as_array().unwrap().len(), 1);

    // Still serving.
    put(&c, "after.webm", fixture("videos/vp9_720p25_gop50.webm")).await;
    wait_for(&c, "derived", "keyframes/after.webm/3.jpg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoking_with_a_video_body_answers_with_the_manifest() {
    let srv = start(CONFIG).await;
    let video = fixture("videos/hevc_720p25_gop50.mp4");
    let res = srv
        .client
        .post(format!(
            "{}/v1/functions/keyframes/invoke?return=first",
            srv.base
        ))
        .body(video.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let manifest = body_json(res).await;
    assert_eq!(manifest["codec"], "hevc");
    assert_eq!(
        (manifest["width"].as_u64(), manifest["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let frames = manifest["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2]["pts"], 4.0);
    // The full reply carries the pictures after the manifest.
    let all = body_json(srv.invoke("keyframes", video).await).await;
    assert_eq!(all["summary"], manifest);
    let names: Vec<&str> = all["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["manifest.json", "0.jpg", "1.jpg", "2.jpg"]);

    let res = srv
        .invoke("keyframes", fixture("bad/mp4_claims_15360x15360.mp4"))
        .await;
    assert_eq!(res.status(), 422);
    let body = body_json(res).await;
    assert!(body.to_string().contains("15360x15360"), "{body}");
}
