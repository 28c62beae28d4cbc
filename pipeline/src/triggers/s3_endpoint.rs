//! The built-in S3 endpoint as a trigger: an upload that the store committed (PUT, POST,
//! CopyObject, CompleteMultipartUpload) becomes an `ObjectCreated` event, recorded through the
//! ingress before the client's 200; if it cannot be recorded, the client is told to retry (its
//! S3 protocol server is `crate::s3_endpoint`; its end-to-end tests are `s3_endpoint.rs`,
//! `s3_promises.rs` and `crash_replay.rs`).

use crate::events::{Event, ObjectRef, stable_id};

/// The upload as an event. `name` is S3's suffix (`Put`, `Post`, `Copy`,
/// `CompleteMultipartUpload`); the id is unique per upload (its time is part of it), so two
/// uploads of the same bytes are two events.
pub fn uploaded(name: &str, bucket: &str, key: &str, etag: &str, size: u64) -> Event {
    let time = crate::events::now();
    Event {
        id: stable_id(&["weir:s3", bucket, key, etag, &time]),
        source: "weir:s3".into(),
        time,
        name: format!("s3:ObjectCreated:{name}"),
        object: ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size: Some(size),
            etag: Some(etag.into()),
            version: None,
        },
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_an_object_created_event_with_its_etag() {
        let e = uploaded(
            "CompleteMultipartUpload",
            "uploads",
            "v/a b.mp4",
            "abc-3",
            7,
        );
        assert_eq!(e.name, "s3:ObjectCreated:CompleteMultipartUpload");
        assert_eq!(
            (e.object.bucket.as_str(), e.object.key.as_str()),
            ("uploads", "v/a b.mp4")
        );
        assert_eq!(
            (e.object.etag.as_deref(), e.object.size),
            (Some("abc-3"), Some(7))
        );
        assert_eq!(e.source, "weir:s3");
        assert!(e.time.ends_with('Z'), "{}", e.time);
    }
}
