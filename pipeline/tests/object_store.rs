//! The `ObjectStore` conformance suite: every case runs against Weir's local store and against
//! the S3 store talking to a real S3 server (Weir's built-in s3s endpoint, started in process).
//! A further store passes by adding one line to `conformance!`.

mod common;

use std::sync::Arc;

use weir_pipeline::store::s3::{MULTIPART_ABOVE, S3Settings, S3Store};
use weir_pipeline::store::{
    LocalStore, Metadata, ObjectStore, PageRequest, PutOptions, StoreErrorKind,
};

/// A store under test and whatever keeps it alive.
struct Fixture {
    store: Arc<dyn ObjectStore>,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn local() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("objects")).unwrap();
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

pub fn s3_settings(addr: std::net::SocketAddr, secret: &str) -> S3Settings {
    S3Settings {
        endpoint: Some(format!("http://{addr}")),
        region: Some("us-east-1".into()),
        path_style: Some(true),
        access_key: Some("test-access".into()),
        secret_key: Some(secret.into()),
    }
}

async fn remote() -> Fixture {
    let srv = common::start("functions: []").await;
    let spool = srv.data.path().join("client-spool");
    std::fs::create_dir_all(&spool).unwrap();
    let addr = srv.running.s3_addr().unwrap();
    let store = S3Store::connect(&s3_settings(addr, "test-secret-key"), spool).await;
    Fixture {
        store: Arc::new(store),
        _keep: Box::new(srv),
    }
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use s3s::crypto::Checksum;
    weir_pipeline::store::hex(s3s::crypto::Md5::checksum(bytes))
}

async fn round_trip_keeps_bytes_type_and_metadata(s: &dyn ObjectStore) {
    s.ensure_bucket("derived").await.unwrap();
    s.ensure_bucket("derived").await.unwrap(); // twice is fine
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let options = PutOptions {
        content_type: Some("image/webp".into()),
        metadata: meta(&[
            ("weir-function", "thumbs"),
            ("weir-source-key", "a%20b/c.jpg"),
        ]),
    };
    let key = "thumbs/a b/ü+?.jpg";
    let put = s
        .put("derived", key, body.clone().into(), &options)
        .await
        .unwrap();
    assert_eq!(
        (put.size, put.etag.as_str()),
        (70_000, md5_hex(&body).as_str())
    );
    let got = s.get("derived", key, 1 << 20).await.unwrap();
    assert_eq!(got.body, body);
    assert_eq!((got.info.size, &got.info.etag), (put.size, &put.etag));
    let head = s.head("derived", key).await.unwrap();
    assert_eq!(head.info.key, key);
    assert_eq!((head.info.size, &head.info.etag), (put.size, &put.etag));
    assert_eq!(head.content_type.as_deref(), Some("image/webp"));
    assert_eq!(head.metadata, options.metadata);
    let now = weir_pipeline::store::now_ms();
    assert!(
        head.info.modified_ms + 5_000 > now && head.info.modified_ms < now + 5_000,
        "modified {} vs now {now}",
        head.info.modified_ms
    );
}

async fn failures_have_kinds(s: &dyn ObjectStore) {
    s.ensure_bucket("ups").await.unwrap();
    s.put("ups", "big", vec![7u8; 1000].into(), &PutOptions::default())
        .await
        .unwrap();
    fn kind<T>(r: Result<T, weir_pipeline::store::StoreError>) -> StoreErrorKind {
        r.map(drop).unwrap_err().kind()
    }
    assert_eq!(
        kind(s.get("ups", "big", 999).await),
        StoreErrorKind::TooLarge
    );
    assert_eq!(
        kind(s.open("ups", "big", 999).await),
        StoreErrorKind::TooLarge
    );
    assert_eq!(
        kind(s.get("ups", "gone", 10).await),
        StoreErrorKind::NotFound
    );
    assert_eq!(
        kind(s.open("ups", "gone", 10).await),
        StoreErrorKind::NotFound
    );
    assert_eq!(kind(s.head("ups", "gone").await), StoreErrorKind::NotFound);
    assert_eq!(
        kind(s.get("no-such-bucket", "k", 10).await),
        StoreErrorKind::NotFound
    );
    let page = s.list("no-such-bucket", &PageRequest::default()).await;
    assert_eq!(kind(page), StoreErrorKind::NotFound);
    // Exactly the limit is allowed.
    assert_eq!(s.get("ups", "big", 1000).await.unwrap().body.len(), 1000);
}

async fn open_reads_by_offset(s: &dyn ObjectStore) {
    s.ensure_bucket("videos").await.unwrap();
    let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    s.put(
        "videos",
        "v.mp4",
        body.clone().into(),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    let opened = s.open("videos", "v.mp4", 10 << 20).await.unwrap();
    assert_eq!(opened.info.etag, md5_hex(&body));
    let src = opened.body;
    assert_eq!(src.len(), body.len() as u64);
    let mut buf = vec![0u8; 4096];
    for at in [0usize, 1_000_003, body.len() - 100] {
        let n = src.read_at(at as u64, &mut buf).unwrap();
        assert!(n > 0);
        assert_eq!(buf[..n], body[at..at + n], "at {at}");
    }
    assert_eq!(src.read_at(body.len() as u64, &mut buf).unwrap(), 0);
}

async fn listing_pages_in_key_order(s: &dyn ObjectStore) {
    s.ensure_bucket("many").await.unwrap();
    let mut keys: Vec<String> = (0..25).map(|i| format!("p/{i:03}-é")).collect();
    keys.push("p/".into());
    for k in keys
        .iter()
        .chain(["other/1".to_string(), "q".to_string()].iter())
    {
        s.put(
            "many",
            k,
            k.clone().into_bytes().into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    keys.sort();
    let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
    loop {
        let req = PageRequest {
            prefix: "p/".into(),
            start_after: after.take(),
            max: 10,
        };
        let page = s.list("many", &req).await.unwrap();
        pages += 1;
        for o in &page.objects {
            assert_eq!(o.size, o.key.len() as u64);
            assert_eq!(o.etag, md5_hex(o.key.as_bytes()));
            assert!(o.modified_ms > 0);
        }
        seen.extend(page.objects.into_iter().map(|o| o.key));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, keys);
    assert_eq!(pages, 3);
    let req = PageRequest {
        prefix: String::new(),
        start_after: Some("p/024-é".into()),
        max: 0,
    };
    let rest: Vec<String> = s
        .list("many", &req)
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(rest, ["q"]);
}

async fn delete_removes_and_tolerates_missing(s: &dyn ObjectStore) {
    s.ensure_bucket("del").await.unwrap();
    s.put("del", "k", b"x".to_vec().into(), &PutOptions::default())
        .await
        .unwrap();
    s.delete("del", "k").await.unwrap();
    s.delete("del", "k").await.unwrap();
    let e = s.head("del", "k").await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::NotFound);
    assert!(
        s.list("del", &PageRequest::default())
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

async fn large_objects_arrive_whole(s: &dyn ObjectStore) {
    s.ensure_bucket("large").await.unwrap();
    let body: Vec<u8> = (0..MULTIPART_ABOVE + 3_000_000)
        .map(|i| (i % 241) as u8)
        .collect();
    let options = PutOptions {
        content_type: Some("video/mp4".into()),
        metadata: meta(&[("weir-function", "frames")]),
    };
    let put = s
        .put("large", "big.bin", body.clone().into(), &options)
        .await
        .unwrap();
    let head = s.head("large", "big.bin").await.unwrap();
    assert_eq!(
        (head.info.size, &head.info.etag),
        (body.len() as u64, &put.etag)
    );
    assert_eq!(head.metadata, options.metadata);
    let got = s.get("large", "big.bin", 1 << 30).await.unwrap();
    assert!(got.body == body, "the bytes differ");
    assert_eq!(got.info.etag, put.etag);
}

macro_rules! conformance {
    ($store:ident: $($case:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let f = super::$store().await;
                    super::$case(&*f.store).await;
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($store:ident),*) => {
        $(conformance!($store:
            round_trip_keeps_bytes_type_and_metadata,
            failures_have_kinds,
            open_reads_by_offset,
            listing_pages_in_key_order,
            delete_removes_and_tolerates_missing,
            large_objects_arrive_whole,
        );)*
    };
}

suite!(local, remote);

/// The S3 store's own failures: wrong keys are denied, a silent endpoint is transient, and both
/// name the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_sorts_denied_and_unreachable() {
    let srv = common::start("functions: []").await;
    let addr = srv.running.s3_addr().unwrap();
    let spool = srv.data.path().to_path_buf();
    let wrong = S3Store::connect(&s3_settings(addr, "not-the-secret"), spool.clone()).await;
    let e = wrong.get("derived", "k", 10).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Denied, "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    let e = wrong.ensure_bucket("derived").await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Denied, "{e}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let gone = S3Store::connect(&s3_settings(down, "test-secret-key"), spool).await;
    let e = gone.ensure_bucket("derived").await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Transient, "{e}");
    assert!(e.to_string().contains(&down.to_string()), "{e}");
}

/// Above the threshold the S3 store uploads in parts: S3 names such an object's ETag `md5-N`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_puts_large_objects_in_parts() {
    let f = remote().await;
    f.store.ensure_bucket("parts").await.unwrap();
    let body = vec![3u8; MULTIPART_ABOVE + 1];
    let put = f
        .store
        .put("parts", "big", body.into(), &PutOptions::default())
        .await
        .unwrap();
    let parts = MULTIPART_ABOVE.div_ceil(weir_pipeline::store::s3::PART_SIZE) + 1;
    assert!(put.etag.ends_with(&format!("-{parts}")), "{}", put.etag);
    let small = f
        .store
        .put(
            "parts",
            "small",
            vec![3u8; 10].into(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    assert!(!small.etag.contains('-'), "{}", small.etag);
}
