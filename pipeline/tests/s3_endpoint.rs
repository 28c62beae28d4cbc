//! The built-in S3 endpoint with the real AWS SDK: uploads (single and multipart) with awkward
//! keys become thumbnails in `derived`; keys stay in their bucket; wrong secrets are refused.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, EncodingType};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_become_thumbnails_and_keys_stay_in_their_bucket() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
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
    // Listings: raw keys, or percent-encoded ones when asked (boto3 and the aws CLI always ask and
    // decode `+` as a space, so a raw `+` would reach them as a space).
    for (encoding, want) in [
        (None, ["photos/my cat+1.jpg", "été/ü.PNG"]),
        (
            Some(EncodingType::Url),
            ["%C3%A9t%C3%A9/%C3%BC.PNG", "photos/my%20cat%2B1.jpg"],
        ),
    ] {
        let listed = c
            .list_objects_v2()
            .bucket("uploads")
            .set_encoding_type(encoding.clone())
            .send()
            .await
            .unwrap();
        let mut keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
        keys.sort();
        assert_eq!(keys, want, "{encoding:?}");
        assert_eq!(listed.encoding_type(), encoding.as_ref());
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
    // Each size is written as soon as it is made, in no fixed order.
    wait_for(&c, "derived", "thumbs/big/dandelions.png/256.jpg").await;
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

    // A key is never a path: `..` segments are kept as text, inside the bucket, byte-exact.
    let dotted = "escape/../../escaped.txt";
    c.put_object()
        .bucket("uploads")
        .key(dotted)
        .body(ByteStream::from(vec![1]))
        .send()
        .await
        .unwrap();
    assert_eq!(object(&c, "uploads", dotted).await.unwrap(), [1]);
    let listed = c
        .list_objects_v2()
        .bucket("uploads")
        .prefix("escape/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents()[0].key(), Some(dotted));
    assert!(!srv.data.path().join("escaped.txt").exists());
    assert!(!srv.data.path().join("objects/escaped.txt").exists());

    // The wrong secret is refused.
    let wrong = s3_client(&srv, "not-the-secret");
    assert!(wrong.list_buckets().send().await.is_err());
    assert_eq!(
        srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

/// Every hostile image in the fixtures, uploaded with the SDK: each ends either as thumbnails (it
/// was a readable picture under a misleading name) or in the dead letters with a reason a person
/// can act on; nothing is lost, and the endpoint keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_input_corpus_through_uploads_ends_in_the_dead_letters() {
    let srv = start(CONFIG).await;
    let c = s3_client(&srv, "test-secret-key");
    let images: Vec<String> = fixture_names("bad")
        .into_iter()
        .filter(|n| n.ends_with(".jpg") || n.ends_with(".png"))
        .collect();
    assert!(images.len() >= 8, "{images:?}");
    for name in &images {
        c.put_object()
            .bucket("uploads")
            .key(format!("bad/{name}"))
            .body(ByteStream::from(fixture(&format!("bad/{name}"))))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // Each upload ends one way or the other.
    let dead = until("every bad upload settled", async || {
        let items = srv.json("/v1/dead-letters").await["items"]
            .as_array()
            .unwrap()
            .clone();
        let mut settled = items.len();
        for name in &images {
            if object(&c, "derived", &format!("thumbs/bad/{name}/256.jpg"))
                .await
                .is_some()
            {
                settled += 1;
            }
        }
        (settled == images.len()).then_some(items)
    })
    .await;
    let reason = |name: &str| {
        dead.iter()
            .find(|i| i["key"] == format!("bad/{name}"))
            .map(|i| (i["kind"].clone(), i["reason"].as_str().unwrap().to_string()))
            .unwrap_or_else(|| panic!("{name} is not in the dead letters: {dead:?}"))
    };
    for (name, words) in [
        ("truncated_40pct.jpg", "truncated"),
        ("truncated_in_header.jpg", "truncated"),
        ("png_truncated_half.png", ""),
        ("zero_bytes.jpg", "empty"),
        ("text_file_named.jpg", "not"),
        ("png_bomb_60000x60000_rgb_header_only.png", "megapixels"),
        ("png_bomb_60000x60000_1bit_complete.png", "megapixels"),
        ("jpeg_sof_claims_65500x65500.jpg", "megapixels"),
    ] {
        let (kind, text) = reason(name);
        assert_eq!(kind, "bad_input", "{name}: {text}");
        assert!(
            text.len() > 10 && text.contains(words),
            "{name}: the reason {text:?} should say {words:?}"
        );
        assert!(dead.iter().all(|i| i["attempts"].as_u64() == Some(1)));
    }
    // A PNG whose checksum is wrong is refused, as libpng refuses it.
    assert_eq!(reason("png_bad_idat_crc.png").0, "bad_input");
    // JPEG bytes under a .png name are sniffed and thumbnailed (a 32 px photo is not upscaled).
    let small = wait_for(&c, "derived", "thumbs/bad/jpeg_data_named.png/256.jpg").await;
    assert_eq!(image::load_from_memory(&small).unwrap().width(), 32);

    // Still serving: a good upload after the corpus becomes its thumbnail.
    c.put_object()
        .bucket("uploads")
        .key("after.jpg")
        .body(ByteStream::from(fixture("images/rocket_640x427.jpg")))
        .send()
        .await
        .unwrap();
    wait_for(&c, "derived", "thumbs/after.jpg/256.jpg").await;
    assert_eq!(srv.json("/healthz").await["status"], "ok");
}
