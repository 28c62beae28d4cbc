//! What standard S3 clients and tools rely on (issue 14), each through the AWS SDK (or a
//! presigned URL with a plain HTTP client) against the built-in endpoint: keys that are prefixes
//! of others, listings with delimiters and markers, conditional and ranged GETs, presigned URLs
//! and their expiry, streamed uploads, versions of an unversioned bucket, and errors as S3 words
//! them.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::*;

type Client = aws_sdk_s3::Client;

async fn server_with_bucket(bucket: &str) -> (TestServer, Client) {
    let srv = start("functions: []\n").await;
    let c = s3_client(&srv, "test-secret-key");
    c.create_bucket().bucket(bucket).send().await.unwrap();
    (srv, c)
}

async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_are_prefixes_of_other_keys_are_separate_objects() {
    let (_srv, c) = server_with_bucket("bkt").await;
    let keys = ["a", "a/b", "a/b/c", "photos/", "photos/x.jpg", "photos//y"];
    for k in keys {
        put(&c, "bkt", k, k.as_bytes()).await;
    }
    // In the other order too: a key below first, then the key that is its folder.
    put(&c, "bkt", "z/deep/file", b"1").await;
    put(&c, "bkt", "z/deep", b"2").await;
    for k in keys {
        assert_eq!(
            object(&c, "bkt", k).await.as_deref(),
            Some(k.as_bytes()),
            "{k}"
        );
    }
    assert_eq!(
        object(&c, "bkt", "z/deep").await.as_deref(),
        Some(&b"2"[..])
    );
    // A folder-like key that was never written is 404 NoSuchKey, not a server error.
    for missing in ["photos", "z", "z/"] {
        let e = c
            .get_object()
            .bucket("bkt")
            .key(missing)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e).as_str()),
            (404, "NoSuchKey"),
            "{missing}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_with_delimiters_and_echo_their_markers() {
    let (_srv, c) = server_with_bucket("bkt").await;
    for k in ["p/1", "p/2", "p/d1/x", "p/d1/y", "p/d2/x", "p/3", "q"] {
        put(&c, "bkt", k, b"x").await;
    }
    // V2, two at a time: keys and common prefixes in one sorted order, tokens echoed.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_objects_v2()
            .bucket("bkt")
            .prefix("p/")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .fetch_owner(true)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.prefix(), Some("p/"));
        assert_eq!(page.delimiter(), Some("/"));
        assert_eq!(page.max_keys(), Some(2));
        assert_eq!(page.continuation_token(), token.as_deref(), "echoed");
        for o in page.contents() {
            assert!(o.owner().is_some(), "fetch-owner gives the owner");
            seen.push(o.key().unwrap().to_string());
        }
        for p in page.common_prefixes() {
            seen.push(p.prefix().unwrap().to_string());
        }
        assert!(page.key_count().unwrap_or(0) <= 2);
        if page.is_truncated() != Some(true) {
            break;
        }
        token = page.next_continuation_token().map(str::to_string);
        assert!(token.is_some(), "a truncated page gives a token");
    }
    seen.sort();
    assert_eq!(seen, ["p/1", "p/2", "p/3", "p/d1/", "p/d2/"]);
    assert_eq!(pages, 3);
    // start-after skips, and is echoed.
    let page = c
        .list_objects_v2()
        .bucket("bkt")
        .start_after("p/d1/x")
        .send()
        .await
        .unwrap();
    assert_eq!(page.start_after(), Some("p/d1/x"));
    let keys: Vec<_> = page.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["p/d1/y", "p/d2/x", "q"]);

    // V1 with a marker: NextMarker is given when a delimiter is, and the marker is echoed.
    let first = c
        .list_objects()
        .bucket("bkt")
        .delimiter("/")
        .prefix("p/")
        .max_keys(3)
        .send()
        .await
        .unwrap();
    assert_eq!(first.is_truncated(), Some(true));
    let next = first
        .next_marker()
        .expect("NextMarker with a delimiter")
        .to_string();
    let second = c
        .list_objects()
        .bucket("bkt")
        .delimiter("/")
        .prefix("p/")
        .marker(&next)
        .send()
        .await
        .unwrap();
    assert_eq!(second.marker(), Some(next.as_str()));
    let mut all: Vec<String> = first
        .contents()
        .iter()
        .chain(second.contents())
        .filter_map(|o| o.key().map(str::to_string))
        .chain(
            first
                .common_prefixes()
                .iter()
                .chain(second.common_prefixes())
                .filter_map(|p| p.prefix().map(str::to_string)),
        )
        .collect();
    all.sort();
    assert_eq!(all, ["p/1", "p/2", "p/3", "p/d1/", "p/d2/"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_and_ranged_gets_answer_as_s3_does() {
    let (_srv, c) = server_with_bucket("bkt").await;
    let body: Vec<u8> = (0..100u8).collect();
    put(&c, "bkt", "k", &body).await;
    let head = c.head_object().bucket("bkt").key("k").send().await.unwrap();
    let etag = head.e_tag().unwrap().to_string();
    let modified = head.last_modified().unwrap().to_owned();
    let past = aws_sdk_s3::primitives::DateTime::from_secs(modified.secs() - 3600);
    let future = aws_sdk_s3::primitives::DateTime::from_secs(modified.secs() + 3600);

    let get = || c.get_object().bucket("bkt").key("k");
    assert!(get().if_match(&etag).send().await.is_ok());
    let e = get().if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    let e = get().if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    assert!(get().if_none_match("\"other\"").send().await.is_ok());
    let e = get().if_modified_since(future).send().await.unwrap_err();
    assert_eq!(status(&e), 304);
    assert!(get().if_modified_since(past).send().await.is_ok());
    let e = get().if_unmodified_since(past).send().await.unwrap_err();
    assert_eq!(status(&e), 412);
    // HEAD follows the same rules.
    let e = c
        .head_object()
        .bucket("bkt")
        .key("k")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);

    for (range, want, content_range) in [
        ("bytes=0-9", &body[0..10], "bytes 0-9/100"),
        ("bytes=90-", &body[90..], "bytes 90-99/100"),
        ("bytes=-5", &body[95..], "bytes 95-99/100"),
        ("bytes=95-1000", &body[95..], "bytes 95-99/100"),
    ] {
        let out = get().range(range).send().await.unwrap();
        assert_eq!(out.content_range(), Some(content_range), "{range}");
        assert_eq!(out.content_length(), Some(want.len() as i64), "{range}");
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], want, "{range}");
    }
    let e = get().range("bytes=100-").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (416, "InvalidRange"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_urls_work_until_they_expire() {
    let (srv, c) = server_with_bucket("bkt").await;
    let http = reqwest::Client::new();
    let put_url = c
        .put_object()
        .bucket("bkt")
        .key("p.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let res = http
        .put(put_url.uri())
        .body(b"presigned body".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let get_url = c
        .get_object()
        .bucket("bkt")
        .key("p.bin")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let res = http.get(get_url.uri()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(&res.bytes().await.unwrap()[..], b"presigned body");

    // Signed an hour ago for ten minutes: expired, refused with S3's words.
    let expired = c
        .get_object()
        .bucket("bkt")
        .key("p.bin")
        .presigned(
            PresigningConfig::builder()
                .start_time(SystemTime::now() - Duration::from_secs(3600))
                .expires_in(Duration::from_secs(600))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let res = http.get(expired.uri()).send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    assert!(text.contains("expired"), "{text}");
    // A signature with one digit changed is refused too.
    let uri = get_url.uri();
    let last = uri.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &uri[..uri.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let res = http.get(tampered).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("SignatureDoesNotMatch"));
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_uploads_are_stored_whole() {
    let (srv, c) = server_with_bucket("bkt").await;
    // From a file: the SDK streams it with aws-chunked encoding and a trailing checksum.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    let photo = fixture("images/mountains_1920x1440.jpg");
    std::fs::write(&path, &photo).unwrap();
    c.put_object()
        .bucket("bkt")
        .key("from-file.jpg")
        .body(ByteStream::from_path(&path).await.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(object(&c, "bkt", "from-file.jpg").await.unwrap(), photo);

    // Transfer-Encoding: chunked with no Content-Length (what curl -T - and many HTTP
    // libraries send for a stream), on a presigned URL.
    let url = c
        .put_object()
        .bucket("bkt")
        .key("chunked.jpg")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        photo.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let res = reqwest::Client::new()
        .put(url.uri())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(object(&c, "bkt", "chunked.jpg").await.unwrap(), photo);
    drop(srv);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_tools_find_versions_metadata_and_clear_errors() {
    let (srv, c) = server_with_bucket("bkt").await;
    put(&c, "bkt", "one", b"1").await;
    put(&c, "bkt", "dir/two", b"22").await;
    // An unversioned bucket lists each object once, as version "null".
    let versions = c.list_object_versions().bucket("bkt").send().await.unwrap();
    let listed: Vec<_> = versions
        .versions()
        .iter()
        .map(|v| (v.key().unwrap(), v.version_id().unwrap(), v.is_latest()))
        .collect();
    assert_eq!(
        listed,
        [("dir/two", "null", Some(true)), ("one", "null", Some(true))]
    );
    // A bucket with objects in it cannot be deleted.
    let e = c.delete_bucket().bucket("bkt").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (409, "BucketNotEmpty"));

    // User metadata with non-ASCII values comes back as it went in.
    c.put_object()
        .bucket("bkt")
        .key("meta")
        .metadata("caption", "Café at dawn — 東京")
        .metadata("plain", "ascii")
        .body(ByteStream::from_static(b"m"))
        .send()
        .await
        .unwrap();
    let head = c
        .head_object()
        .bucket("bkt")
        .key("meta")
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    // The SDK sends a non-ASCII value in RFC 2047's encoded form; S3 gives back what was sent.
    let caption = meta.get("caption").unwrap();
    let b64 = caption
        .strip_prefix("=?UTF-8?B?")
        .and_then(|v| v.strip_suffix("?="))
        .unwrap_or_else(|| panic!("{caption}"));
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "Café at dawn — 東京");
    assert_eq!(meta.get("plain").map(String::as_str), Some("ascii"));

    // Every error body names a request id, the same as its x-amz-request-id header.
    let url = c
        .get_object()
        .bucket("bkt")
        .key("missing")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let res = reqwest::get(url.uri()).await.unwrap();
    assert_eq!(res.status(), 404);
    let header = res
        .headers()
        .get("x-amz-request-id")
        .expect("x-amz-request-id")
        .to_str()
        .unwrap()
        .to_string();
    let text = res.text().await.unwrap();
    assert!(!header.is_empty());
    assert!(
        text.contains(&format!("<RequestId>{header}</RequestId>")),
        "{header} not in {text}"
    );
    // And the SDK sees it.
    let e = c
        .get_object()
        .bucket("bkt")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert!(
        e.as_service_error()
            .and_then(aws_sdk_s3::operation::RequestId::request_id)
            .is_some(),
        "{e:?}"
    );
    drop(srv);
}

/// Replaces the body after the request was signed, as a proxy that corrupts data would.
#[derive(Debug)]
struct SwapBodyAfterSigning;

impl aws_sdk_s3::config::Intercept for SwapBodyAfterSigning {
    fn name(&self) -> &'static str {
        "SwapBodyAfterSigning"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        _: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        *ctx.request_mut().body_mut() = aws_sdk_s3::primitives::SdkBody::from("bbbb");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_match_its_signed_hash_is_refused() {
    let (srv, c) = server_with_bucket("bkt").await;
    // No flexible checksum, so the payload's SHA-256 is what the signature covers.
    let strict = aws_sdk_s3::Client::from_conf(
        c.config()
            .to_builder()
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    let e = strict
        .put_object()
        .bucket("bkt")
        .key("k")
        .body(ByteStream::from_static(b"aaaa"))
        .customize()
        .interceptor(SwapBodyAfterSigning)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (400, "XAmzContentSHA256Mismatch"),
        "{e:?}"
    );
    assert!(object(&c, "bkt", "k").await.is_none(), "nothing stored");
    drop(srv);
}
