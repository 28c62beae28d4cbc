//! The built-in S3 endpoint with the real AWS SDK: uploads (single and multipart) with awkward
//! keys become thumbnails in `derived`; keys cannot escape their bucket; wrong keys are refused.

mod common;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

const CONFIG: &str = r#"
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    triggers:
      - s3: { bucket: uploads, suffix: [.jpg, .jpeg, .png, .webp, .gif] }
    output: { bucket: derived, key: "thumbs/{key}/{size}.jpg" }
    resources: { timeout: 60s }
"#;

fn client(srv: &TestServer, secret: &str) -> Client {
    let creds = Credentials::new("test-access", secret, None, None, "test");
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", srv.running.s3_addr()))
        .region(Region::new("us-east-1"))
        .credentials_provider(creds)
        .force_path_style(true)
        .build();
    Client::from_conf(conf)
}

async fn object(c: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = c.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.ok()?.into_bytes().to_vec())
}

async fn wait_for(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    until(&format!("{key} in {bucket}"), async || {
        object(c, bucket, key).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_become_thumbnails_and_keys_stay_in_their_bucket() {
    let srv = start(CONFIG).await;
    let c = client(&srv, "test-secret-key");
    let buckets = c.list_buckets().send().await.unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert!(
        names.contains(&"uploads") && names.contains(&"derived"),
        "{names:?}"
    );

    for (key, photo) in [
        ("photos/my cat+1.jpg", "rocket_640x427.jpg"),
        ("été/ü.PNG", "chelsea_cat_451x300.png"),
    ] {
        let body = ByteStream::from(fixture(&format!("images/{photo}")));
        c.put_object()
            .bucket("uploads")
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap();
        let small = wait_for(&c, "derived", &format!("thumbs/{key}/256.jpg")).await;
        assert_eq!(
            image::load_from_memory(&small).unwrap().width(),
            256,
            "{key}"
        );
        let head = c
            .head_object()
            .bucket("uploads")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.content_length(),
            Some(fixture(&format!("images/{photo}")).len() as i64)
        );
    }

    // A multipart upload (parts of at least 5 MiB, as S3 requires): one event, one set of outputs.
    // The 16 MP fixture photo as a PNG is large enough for several parts.
    let pixels = image::load_from_memory(&fixture("images/dandelions_5312x2988.jpg"))
        .unwrap()
        .to_rgb8();
    let mut photo = Vec::new();
    let png = image::codecs::png::PngEncoder::new_with_quality(
        &mut photo,
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Sub,
    );
    image::ImageEncoder::write_image(
        png,
        pixels.as_raw(),
        5312,
        2988,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    assert!(photo.len() > 6 << 20, "{} bytes", photo.len());
    let key = "big/dandelions.png";
    let up = c
        .create_multipart_upload()
        .bucket("uploads")
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut parts = Vec::new();
    for (n, chunk) in photo.chunks(5 << 20).enumerate() {
        let number = n as i32 + 1;
        let part = c
            .upload_part()
            .bucket("uploads")
            .key(key)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
    }
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build();
    c.complete_multipart_upload()
        .bucket("uploads")
        .key(key)
        .upload_id(id)
        .multipart_upload(done)
        .send()
        .await
        .unwrap();
    let big = wait_for(&c, "derived", "thumbs/big/dandelions.png/1024.jpg").await;
    assert_eq!(image::load_from_memory(&big).unwrap().width(), 1024);
    assert_eq!(
        object(&c, "uploads", key).await.unwrap(),
        photo,
        "the parts were joined in order"
    );
    let listed = c
        .list_objects_v2()
        .bucket("derived")
        .prefix("thumbs/big/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed.contents().len(),
        2,
        "one set of outputs for one upload"
    );

    // Keys that would leave the bucket are refused, and nothing lands outside it.
    let escape = c
        .put_object()
        .bucket("uploads")
        .key("../escaped.jpg")
        .body(ByteStream::from(vec![1]))
        .send()
        .await;
    assert!(escape.is_err());
    assert!(!srv.data.path().join("objects/escaped.jpg").exists());
    assert!(!srv.data.path().join("escaped.jpg").exists());

    // The wrong secret is refused.
    let wrong = client(&srv, "not-the-secret");
    assert!(wrong.list_buckets().send().await.is_err());
    assert_eq!(
        srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}
