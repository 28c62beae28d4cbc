//! Storage events end to end: objects in a bucket, S3 notifications on the webhook as AWS, MinIO
//! and Ceph send them, thumbnails written to the output bucket under their template keys, and the
//! bad-input corpus in the dead letters with reasons.

mod common;

use common::*;
use weir_pipeline::store::LocalStore;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: [.jpg, .jpeg, .png, .webp, .gif] }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { timeout: 60s, retries: { max: 1, backoff: 50ms } }
"#;

fn store(srv: &TestServer) -> LocalStore {
    srv.running.store().unwrap().clone()
}

/// One notification record as `source` sends it, with the key already encoded its way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notified_uploads_become_thumbnails_under_their_keys() {
    let srv = start(CONFIG).await;
    let s = store(&srv);
    // (stored key, photo, encoded as AWS/MinIO would, sender)
    let cases = [
        (
            "photos/my cat+1.jpg",
            "mountains_1920x1440.jpg",
            "photos/my+cat%2B1.jpg",
            "aws:s3",
        ),
        (
            "a/b/été.PNG",
            "chelsea_cat_alpha_451x300.png",
            "a%2Fb%2F%C3%A9t%C3%A9.PNG",
            "minio:s3",
        ),
        (
            "raw+key%2B.webp",
            "forest_stream_1280x852.webp",
            "raw+key%2B.webp",
            "ceph:s3",
        ),
        (
            "dogs.jpeg",
            "dogs_exif_orientation6_3088x2048.jpg",
            "dogs.jpeg",
            "aws:s3",
        ),
    ];
    for (key, photo, _, _) in &cases {
        s.put("uploads", key, &fixture(&format!("images/{photo}")))
            .unwrap();
    }
    let records: Vec<String> = cases
        .iter()
        .map(|(_, _, enc, src)| s3_record(src, enc))
        .collect();
    let res = srv.notify(&records).await;
    assert_eq!(res.status(), 200);
    let reply = body_json(res).await;
    assert_eq!(
        (reply["accepted"].as_u64(), reply["routed"].as_u64()),
        (Some(4), Some(4))
    );
    for (key, photo, _, _) in &cases {
        let shown = image::load_from_memory(&fixture(&format!("images/{photo}"))).unwrap();
        // Each size is written as soon as it is made, in no fixed order: wait for both.
        let mut made = Vec::new();
        for size in [1024, 256] {
            let path = format!("thumbs/{key}/{size}.jpg");
            made.push(until(key, async || s.get("derived", &path, 1 << 24).ok()).await);
        }
        let (big, small) = (made.remove(0), made.remove(0));
        let (big, small) = (
            image::load_from_memory(&big).unwrap(),
            image::load_from_memory(&small).unwrap(),
        );
        assert_eq!(small.width(), 256, "{key}");
        assert_eq!(big.width(), 1024.min(shown.width()), "{key}");
    }
    // The rotated dogs come out portrait.
    let dogs = image::load_from_memory(
        &s.get("derived", "thumbs/dogs.jpeg/256.jpg", 1 << 24)
            .unwrap(),
    )
    .unwrap();
    assert_eq!((dogs.width(), dogs.height()), (256, 386));
    // Nothing else was written, and nothing is dead.
    assert_eq!(s.list("derived", "").unwrap().len(), 8);
    assert_eq!(
        srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_ends_in_the_dead_letters_with_reasons() {
    let srv = start(CONFIG).await;
    let s = store(&srv);
    let bad = [
        "truncated_40pct.jpg",
        "png_bomb_60000x60000_rgb_header_only.png",
        "text_file_named.jpg",
        "zero_bytes.jpg",
    ];
    for f in bad {
        s.put(
            "uploads",
            &format!("bad/{f}"),
            &fixture(&format!("bad/{f}")),
        )
        .unwrap();
    }
    let mut records: Vec<String> = bad
        .iter()
        .map(|f| s3_record("aws:s3", &format!("bad/{f}")))
        .collect();
    records.push(s3_record("aws:s3", "never-uploaded.jpg"));
    records.push(s3_record("aws:s3", "notes.txt")); // no trigger wants it
    let reply = body_json(srv.notify(&records).await).await;
    assert_eq!(
        (reply["accepted"].as_u64(), reply["routed"].as_u64()),
        (Some(6), Some(5))
    );
    let items = until("five dead letters", async || {
        let v = srv.json("/v1/dead-letters").await;
        let items = v["items"].as_array().unwrap().clone();
        (items.len() == 5).then_some(items)
    })
    .await;
    for item in &items {
        assert_eq!(item["function"], "thumbs");
        assert_eq!(item["kind"], "bad_input", "{item}");
        assert!(!item["reason"].as_str().unwrap().is_empty());
    }
    let reason_of = |key: &str| {
        items
            .iter()
            .find(|i| i["key"] == key)
            .map(|i| i["reason"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(reason_of("bad/truncated_40pct.jpg").contains("truncated"));
    assert!(reason_of("bad/png_bomb_60000x60000_rgb_header_only.png").contains("megapixels"));
    assert!(reason_of("never-uploaded.jpg").contains("no object"));
    // Newest first, paged.
    let page = srv.json("/v1/dead-letters?limit=2").await;
    let ids: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1]);
    let next = srv
        .json(&format!("/v1/dead-letters?limit=10&after={}", ids[1]))
        .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 3);
    assert_eq!(srv.json("/healthz").await["status"], "ok");
}

#[tokio::test]
async fn the_webhook_answers_test_events_malformed_bodies_and_tokens() {
    let srv = start_with_token(CONFIG, Some("hook-token")).await;
    let url = format!("{}/v1/events/s3", srv.base);
    let test_event = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"uploads"}"#;
    let res = srv
        .client
        .post(&url)
        .bearer_auth("hook-token")
        .body(test_event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body_json(res).await["accepted"], 0);
    let res = srv
        .client
        .post(&url)
        .bearer_auth("hook-token")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        body_json(res).await["error"]
            .as_str()
            .unwrap()
            .contains("not an S3 notification")
    );
    let res = srv
        .client
        .post(&url)
        .bearer_auth("wrong")
        .body(test_event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = srv
        .client
        .head(&url)
        .bearer_auth("hook-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "MinIO's liveness probe");
    let res = srv
        .client
        .get(format!("{}/v1/dead-letters?limit=x", srv.base))
        .bearer_auth("hook-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
