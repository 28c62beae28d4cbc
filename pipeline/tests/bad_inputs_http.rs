//! Hostile files and bad requests: each gets a 4xx with a reason, and the server keeps serving.

mod common;

use common::*;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256] }
    resources: { max_input: 2MB, timeout: 30s }
"#;

/// What each hostile image must be refused for (a word the reason must contain), from
/// fixtures/golden/bad_inputs.json's descriptions. `None`: a valid image under a wrong name.
const BAD_IMAGES: &[(&str, Option<&str>)] = &[
    ("jpeg_data_named.png", None),
    ("jpeg_sof_claims_65500x65500.jpg", Some("megapixels")),
    ("png_bad_idat_crc.png", Some("CRC")),
    ("png_bomb_60000x60000_1bit_complete.png", Some("megapixels")),
    (
        "png_bomb_60000x60000_rgb_header_only.png",
        Some("megapixels"),
    ),
    ("png_truncated_half.png", Some("truncated")),
    ("text_file_named.jpg", Some("not an image")),
    ("truncated_40pct.jpg", Some("truncated")),
    ("truncated_in_header.jpg", Some("truncated")),
    ("zero_bytes.jpg", Some("empty")),
];

#[tokio::test]
async fn every_hostile_image_is_refused_with_a_reason() {
    let srv = start(CONFIG).await;
    for (file, why) in BAD_IMAGES {
        let res = srv.invoke("thumbs", fixture(&format!("bad/{file}"))).await;
        let status = res.status();
        let reply = body_json(res).await;
        match why {
            None => {
                // Content is sniffed: a JPEG named .png is the 32x21 JPEG it is.
                assert_eq!(status, 200, "{file}: {reply}");
                assert_eq!(reply["summary"]["input"]["format"], "jpg", "{file}");
                assert_eq!(reply["summary"]["thumbnails"][0]["width"], 32);
            }
            Some(word) => {
                assert_eq!(status, 422, "{file}: {reply}");
                assert_eq!(reply["kind"], "bad_input", "{file}");
                let reason = reply["error"].as_str().unwrap();
                eprintln!("{file}: {status} {reason}");
                assert!(
                    reason.contains(word),
                    "{file}: reason {reason:?} lacks {word:?}"
                );
            }
        }
        // Still serving after each one.
        assert_eq!(
            srv.invoke("thumbs", fixture("images/chelsea_tiny_32x21.jpg"))
                .await
                .status(),
            200
        );
    }
    // Every file in fixtures/bad that is meant as an image is in the table above.
    for name in fixture_names("bad") {
        let is_image = [".jpg", ".png", ".gif", ".webp"]
            .iter()
            .any(|e| name.ends_with(e));
        assert!(
            !is_image || BAD_IMAGES.iter().any(|(f, _)| *f == name),
            "{name} is not tested"
        );
    }
}

#[tokio::test]
async fn other_media_and_bad_requests_get_clear_statuses() {
    let srv = start(CONFIG).await;
    let res = srv
        .invoke("thumbs", fixture("bad/mp4_truncated_mid_mdat.mp4"))
        .await;
    assert_eq!(res.status(), 422);
    assert!(
        body_json(res).await["error"]
            .as_str()
            .unwrap()
            .contains("not an image")
    );

    let res = srv.invoke("nosuch", vec![1, 2, 3]).await;
    assert_eq!(res.status(), 404);
    assert!(
        body_json(res).await["error"]
            .as_str()
            .unwrap()
            .contains("nosuch")
    );

    // Over max_input (2 MB): refused from the declared length, before the function sees it.
    let res = srv.invoke("thumbs", vec![0u8; 3_000_000]).await;
    assert_eq!(res.status(), 413);
    assert_eq!(body_json(res).await["kind"], "too_large");

    // Over the limit without a declared length (chunked upload): refused while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..30).map(|_| Ok(vec![0u8; 100_000])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let res = srv
        .client
        .post(format!("{}/v1/functions/thumbs/invoke", srv.base))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);

    let res = srv
        .client
        .get(format!("{}/v1/nowhere", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(srv.json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn the_token_guards_invocation_but_not_health() {
    let srv = start_with_token(CONFIG, Some("s3cret")).await;
    let url = format!("{}/v1/functions/thumbs/invoke", srv.base);
    let photo = fixture("images/chelsea_tiny_32x21.jpg");
    let res = srv
        .client
        .post(&url)
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = srv
        .client
        .post(&url)
        .bearer_auth("wrong")
        .body(photo.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = srv
        .client
        .get(format!("{}/v1/functions", srv.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = srv
        .client
        .post(&url)
        .bearer_auth("s3cret")
        .body(photo)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(srv.json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn metrics_show_histograms_and_outcomes() {
    let yaml = CONFIG.replace("name: thumbs", "name: metered");
    let srv = start(&yaml).await;
    assert_eq!(
        srv.invoke("metered", fixture("images/chelsea_tiny_32x21.jpg"))
            .await
            .status(),
        200
    );
    assert_eq!(
        srv.invoke("metered", fixture("bad/zero_bytes.jpg"))
            .await
            .status(),
        422
    );
    let text = metrics_text(&srv.client, &srv.base).await;
    for needle in [
        r#"weir_invocations_total{function="metered",outcome="ok"} 1"#,
        r#"weir_invocations_total{function="metered",outcome="bad_input"} 1"#,
        r#"weir_queue_wait_seconds_bucket{function="metered""#,
        r#"weir_batch_size_bucket{function="metered""#,
        r#"weir_function_duration_seconds_bucket{function="metered""#,
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
