//! What a careless or hostile S3 client found (issue 14), each through the real AWS SDK or a raw
//! socket against the built-in endpoint: a refused PUT leaves the stored object, keys of any
//! length S3 allows are processed, multipart follows S3, and bodies have deadlines.

mod common;

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart};
use base64::Engine as _;
use common::*;

const CONFIG: &str = r#"
http: { body_timeout: 1s }
s3: { body_timeout: 1s }
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: .jpg }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { timeout: 60s, retries: { max: 1, backoff: 50ms } }
"#;

fn md5_b64(bytes: &[u8]) -> String {
    use s3s::crypto::Checksum;
    base64::engine::general_purpose::STANDARD.encode(s3s::crypto::Md5::checksum(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_put_leaves_the_old_object_and_its_thumbnail() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let old = fixture("images/rocket_640x427.jpg");
    let new = fixture("images/chelsea_cat_451x300.png");
    c.put_object()
        .bucket("uploads")
        .key("p.jpg")
        .body(ByteStream::from(old.clone()))
        .send()
        .await
        .unwrap();
    let thumb = wait_for(&c, "derived", "thumbs/p.jpg/256.jpg").await;
    // The digest of the old body sent with the new one: refused, and nothing changes.
    let e = c
        .put_object()
        .bucket("uploads")
        .key("p.jpg")
        .content_md5(md5_b64(&old))
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "BadDigest"));
    assert_eq!(object(&c, "uploads", "p.jpg").await.unwrap(), old);
    // A checksum that does not match is refused the same way.
    let e = c
        .put_object()
        .bucket("uploads")
        .key("p.jpg")
        .checksum_sha256(base64::engine::general_purpose::STANDARD.encode([0u8; 32]))
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400, "{e:?}");
    assert_eq!(object(&c, "uploads", "p.jpg").await.unwrap(), old);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        object(&c, "derived", "thumbs/p.jpg/256.jpg").await.unwrap(),
        thumb
    );
    // The right digest is taken.
    c.put_object()
        .bucket("uploads")
        .key("p.jpg")
        .content_md5(md5_b64(&new))
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(object(&c, "uploads", "p.jpg").await.unwrap(), new);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_up_to_1024_bytes_are_stored_listed_and_processed() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let photo = fixture("images/rocket_640x427.jpg");
    // 1024 bytes of two-byte characters, listed back byte-exact.
    let long = "é".repeat(512);
    assert_eq!(long.len(), 1024);
    c.put_object()
        .bucket("uploads")
        .key(&long)
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let listed = c
        .list_objects_v2()
        .bucket("uploads")
        .prefix("é")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents()[0].key(), Some(long.as_str()));
    let e = c
        .put_object()
        .bucket("uploads")
        .key("k".repeat(1025))
        .body(ByteStream::from(b"x".to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400, "{e:?}");
    // A 1009-byte key becomes its 1024-byte thumbnail key; one byte more is a dead letter that
    // names the length.
    let key = format!("{}.jpg", "a".repeat(1005));
    assert_eq!(key.len(), 1009);
    let over = format!("b{key}");
    for k in [&key, &over] {
        c.put_object()
            .bucket("uploads")
            .key(k.as_str())
            .body(ByteStream::from(photo.clone()))
            .send()
            .await
            .unwrap();
    }
    let out = format!("thumbs/{key}/256.jpg");
    assert_eq!(out.len(), 1024);
    let thumb = wait_for(&c, "derived", &out).await;
    assert_eq!(image::load_from_memory(&thumb).unwrap().width(), 256);
    let dead = until("the over-long output in the dead letters", async || {
        let items = srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .clone();
        items.into_iter().find(|i| i["key"] == over.as_str())
    })
    .await;
    assert_eq!(dead["kind"], "bad_input", "{dead}");
    assert!(dead["reason"].as_str().unwrap().contains("1025"), "{dead}");
}

async fn upload_part(
    c: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    n: i32,
    body: Vec<u8>,
) -> Result<CompletedPart, String> {
    let p = c
        .upload_part()
        .bucket("uploads")
        .key(key)
        .upload_id(id)
        .part_number(n)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| format!("{} {}", status(&e), code(&e)))?;
    Ok(CompletedPart::builder()
        .part_number(n)
        .set_e_tag(p.e_tag().map(str::to_string))
        .set_checksum_crc32(p.checksum_crc32().map(str::to_string))
        .build())
}

async fn complete(
    c: &aws_sdk_s3::Client,
    key: &str,
    id: &str,
    parts: Vec<CompletedPart>,
) -> Result<String, String> {
    c.complete_multipart_upload()
        .bucket("uploads")
        .key(key)
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map(|o| o.e_tag().unwrap_or_default().to_string())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_follow_s3() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let key = "big.bin";
    let create = async |k: &str| {
        c.create_multipart_upload()
            .bucket("uploads")
            .key(k)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send()
            .await
            .unwrap()
            .upload_id()
            .unwrap()
            .to_string()
    };
    let id = create(key).await;
    let (a, b) = (vec![1u8; 5 << 20], vec![2u8; 5 << 20]);
    for n in [0, -1, 10001] {
        let e = upload_part(&c, key, &id, n, b"x".to_vec())
            .await
            .unwrap_err();
        assert!(e.starts_with("400"), "part {n}: {e}");
    }
    let other = upload_part(&c, "other.bin", &id, 1, b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(other, "404 NoSuchUpload");
    let p1 = upload_part(&c, key, &id, 1, a.clone()).await.unwrap();
    let p2 = upload_part(&c, key, &id, 2, b.clone()).await.unwrap();
    let p3 = upload_part(&c, key, &id, 3, b"tail".to_vec())
        .await
        .unwrap();
    let with_etag = |p: &CompletedPart, e: &str| {
        CompletedPart::builder()
            .set_part_number(p.part_number())
            .e_tag(e)
            .build()
    };
    let missing = CompletedPart::builder()
        .part_number(4)
        .e_tag("\"00\"")
        .build();
    // Each refusal names S3's code and leaves the upload whole for the retry.
    for (parts, want) in [
        (vec![p2.clone(), p1.clone()], "400 InvalidPartOrder"),
        (vec![p1.clone(), missing.clone()], "400 InvalidPart"),
        (
            vec![with_etag(&p1, "\"0123\""), p2.clone()],
            "400 InvalidPart",
        ),
        (vec![p3.clone(), missing], "400 EntityTooSmall"),
    ] {
        assert_eq!(complete(&c, key, &id, parts).await.unwrap_err(), want);
    }
    let stolen = complete(&c, "other.bin", &id, vec![p1.clone(), p3.clone()]).await;
    assert_eq!(stolen.unwrap_err(), "404 NoSuchUpload");
    let listed = c
        .list_parts()
        .bucket("uploads")
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    // Parts 1 and 3, a gap S3 allows.
    let etag = complete(&c, key, &id, vec![p1.clone(), p3.clone()])
        .await
        .unwrap();
    assert!(etag.ends_with("-2\""), "{etag}");
    let mut want = a.clone();
    want.extend_from_slice(b"tail");
    let got = c
        .get_object()
        .bucket("uploads")
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let crc = got.checksum_crc32().unwrap_or_default().to_string();
    assert!(crc.ends_with("-2"), "a composite checksum: {crc}");
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        want
    );
    let second = c
        .get_object()
        .bucket("uploads")
        .key(key)
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (second.parts_count(), second.content_length()),
        (Some(2), Some(4))
    );
    assert_eq!(
        second.body.collect().await.unwrap().into_bytes().as_ref(),
        b"tail"
    );
    assert_eq!(
        complete(&c, key, &id, vec![p1]).await.unwrap_err(),
        "404 NoSuchUpload"
    );
    // Complete after abort: no such upload; nothing of it is left.
    let gone = create("gone.bin").await;
    let g1 = upload_part(&c, "gone.bin", &gone, 1, b"x".to_vec())
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket("uploads")
        .key("gone.bin")
        .upload_id(&gone)
        .send()
        .await
        .unwrap();
    assert_eq!(
        complete(&c, "gone.bin", &gone, vec![g1]).await.unwrap_err(),
        "404 NoSuchUpload"
    );
    let uploads = c
        .list_multipart_uploads()
        .bucket("uploads")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty(), "{uploads:?}");
}

/// Sends `head` then trickles the body one byte every 300 ms; gives the reply's status line and
/// body, and how long the server took to answer.
async fn trickle(addr: std::net::SocketAddr, head: String) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = std::time::Instant::now();
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..100 {
            if w.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(20), r.read(&mut buf))
        .await
        .expect("the server answered a trickled body")
        .unwrap();
    writer.abort();
    (
        String::from_utf8_lossy(&buf[..n]).into_owned(),
        start.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_bodies_are_cut_at_their_deadline() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let url = c
        .put_object()
        .bucket("uploads")
        .key("slow.jpg")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(60)).unwrap(),
        )
        .await
        .unwrap();
    let uri: reqwest::Url = url.uri().parse().unwrap();
    let path = format!("{}?{}", uri.path(), uri.query().unwrap_or(""));
    let s3 = srv.running.s3_addr().unwrap();
    let head = format!("PUT {path} HTTP/1.1\r\nHost: {s3}\r\nContent-Length: 1000\r\n\r\n");
    let (reply, took) = trickle(s3, head).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("RequestTimeout"), "{reply}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        object(&c, "uploads", "slow.jpg").await.is_none(),
        "nothing stored"
    );

    let http = srv.running.http_addr();
    let head =
        format!("POST /v1/events/s3 HTTP/1.1\r\nHost: {http}\r\nContent-Length: 1000\r\n\r\n");
    let (reply, took) = trickle(http, head).await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("\"kind\":\"timeout\""), "{reply}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_bodies_over_the_limit_get_a_json_413() {
    let srv = start(&format!(
        "http: {{ max_event_body: 1KB }}\n{}",
        CONFIG.replace("http: { body_timeout: 1s }\n", "")
    ))
    .await;
    let res = srv
        .client
        .post(format!("{}/v1/events/s3", srv.base))
        .body(vec![b' '; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body = body_json(res).await;
    assert_eq!(body["kind"], "too_large", "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("http.max_event_body"),
        "{body}"
    );
}

/// A JPEG whose frame header claims `w`x`h`, its data unchanged.
fn claims(file: &str, w: u16, h: u16) -> Vec<u8> {
    let mut jpeg = fixture(file);
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    jpeg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_size_header_the_data_cannot_fill_is_bad_input() {
    let config = format!(
        r#"{CONFIG}
  - name: labels
    kind: classify
    params: {{ model: efficientnet_lite0, top_k: 3 }}
    triggers:
      - s3: {{ bucket: uploads, suffix: .jpg }}
    output: {{ bucket: derived, key: "labels/{{key}}.json" }}
    resources: {{ timeout: 60s, retries: {{ max: 1, backoff: 50ms }} }}
models: {}
"#,
        root().join("examples/models").display()
    );
    let srv = start(&config).await;
    // 1.9 KB of data cannot fill 9000x9000 (found from the marker walk); a 640x427 photo whose
    // header says 640x854 runs out halfway (found by libjpeg-turbo as it decodes).
    let cases = [
        (
            "tiny.jpg",
            claims("images/chelsea_tiny_32x21.jpg", 9000, 9000),
            "9000x9000",
        ),
        (
            "rocket.jpg",
            claims("images/rocket_640x427.jpg", 640, 854),
            "640x854",
        ),
    ];
    for (_, body, size) in &cases {
        for function in ["thumbs", "labels"] {
            let res = srv.invoke(function, body.clone()).await;
            let status = res.status();
            let reply = body_json(res).await;
            assert_eq!(status, 422, "{function} {size}: {reply}");
            assert_eq!(reply["kind"], "bad_input", "{reply}");
            let reason = reply["error"].as_str().unwrap();
            assert!(reason.contains(size), "{function}: {reason}");
        }
    }
    let c = s3_client(&srv, "test-secret-key");
    for (key, body, _) in &cases {
        c.put_object()
            .bucket("uploads")
            .key(*key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    let dead = until("four dead letters", async || {
        let items = srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .clone();
        (items.len() >= 4).then_some(items)
    })
    .await;
    assert_eq!(dead.len(), 4, "{dead:?}");
    for (key, _, size) in &cases {
        for function in ["thumbs", "labels"] {
            let d = dead
                .iter()
                .find(|d| d["key"] == *key && d["function"] == function)
                .unwrap_or_else(|| panic!("no dead letter for {function} {key}: {dead:?}"));
            assert_eq!(d["kind"], "bad_input", "{d}");
            assert!(d["reason"].as_str().unwrap().contains(size), "{d}");
        }
    }
    // No thumbnail and no label for either.
    let listed = c.list_objects_v2().bucket("derived").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "{:?}", listed.contents());
}
