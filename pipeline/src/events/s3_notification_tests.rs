//! Bodies shaped as each sender writes them.

use super::*;

fn record(source: &str, name: &str, key: &str) -> String {
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"{source}","awsRegion":"us-east-1","eventTime":"2026-11-24T10:00:00.000Z",
        "eventName":"{name}","s3":{{"s3SchemaVersion":"1.0","bucket":{{"name":"uploads","arn":"arn:aws:s3:::uploads"}},
        "object":{{"key":"{key}","size":1234,"eTag":"0123abcd","sequencer":"0055AED6DCD90281E5"}}}}}}"#
    )
}

fn body(records: &[String]) -> Vec<u8> {
    format!(r#"{{"Records":[{}]}}"#, records.join(",")).into_bytes()
}

#[test]
fn aws_keys_are_form_decoded() {
    let events = parse(&body(&[record(
        "aws:s3",
        "ObjectCreated:Put",
        "photos/my+cat%2B1+%C3%A9t%C3%A9.jpg",
    )]))
    .unwrap();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.object.key, "photos/my cat+1 été.jpg");
    assert_eq!(e.name, "s3:ObjectCreated:Put");
    assert_eq!(
        (e.object.bucket.as_str(), e.object.size),
        ("uploads", Some(1234))
    );
    assert_eq!(e.source, "aws:s3");
}

#[test]
fn minio_keys_with_encoded_slashes_and_s3_prefixed_names() {
    let mut text = String::from_utf8(body(&[record(
        "minio:s3",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "a%2Fb%2Fc+d.png",
    )]))
    .unwrap();
    // MinIO adds its own top-level fields beside Records.
    text = text.replacen(
        '{',
        r#"{"EventName":"s3:ObjectCreated:CompleteMultipartUpload","Key":"uploads/a/b/c d.png","#,
        1,
    );
    let e = &parse(text.as_bytes()).unwrap()[0];
    assert_eq!(e.object.key, "a/b/c d.png");
    assert_eq!(e.name, "s3:ObjectCreated:CompleteMultipartUpload");
}

#[test]
fn ceph_keys_are_taken_raw() {
    let e = &parse(&body(&[record(
        "ceph:s3",
        "ObjectCreated:Put",
        "odd+name%2B.jpg",
    )]))
    .unwrap()[0];
    assert_eq!(e.object.key, "odd+name%2B.jpg");
    assert_eq!(e.source, "ceph:s3");
}

#[test]
fn the_same_notification_gets_the_same_id_and_others_differ() {
    let a = parse(&body(&[record("aws:s3", "ObjectCreated:Put", "x.jpg")])).unwrap();
    let b = parse(&body(&[
        record("aws:s3", "ObjectCreated:Put", "x.jpg"),
        record("aws:s3", "ObjectCreated:Put", "y.jpg"),
    ]))
    .unwrap();
    assert_eq!(a[0].id, b[0].id);
    assert_ne!(b[0].id, b[1].id);
}

#[test]
fn test_events_are_ignored_and_mistakes_are_named() {
    let test = br#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-24T10:00:00.000Z","Bucket":"uploads"}"#;
    assert_eq!(parse(test).unwrap(), vec![]);
    assert!(matches!(
        parse(b"{not json"),
        Err(NotificationError::Malformed(_))
    ));
    assert!(matches!(parse(b"{}"), Err(NotificationError::Malformed(_))));
    let no_key = body(&[record("aws:s3", "ObjectCreated:Put", "x").replace(r#""key":"x","#, "")]);
    let err = parse(&no_key).unwrap_err();
    assert_eq!(err.to_string(), "Records[0]: s3.object.key is missing");
    let bad_utf8 = body(&[record("aws:s3", "ObjectCreated:Put", "%FF%FE")]);
    assert!(parse(&bad_utf8).unwrap_err().to_string().contains("UTF-8"));
}
