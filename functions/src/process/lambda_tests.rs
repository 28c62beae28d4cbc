use super::*;

fn upload(id: &str, key: &str) -> ObjectEvent {
    ObjectEvent {
        id: id.into(),
        source: "weir:s3".into(),
        time: "2026-12-07T10:00:00.000Z".into(),
        name: "s3:ObjectCreated:Put".into(),
        bucket: "uploads".into(),
        key: key.into(),
        size: Some(42),
        etag: Some("\"abc123\"".into()),
        version: None,
    }
}

#[test]
fn uploads_become_s3_records_with_keys_encoded_as_aws_does() {
    let (a, b) = (
        upload("e1", "in/red flower+1.jpg"),
        upload("e2", "in/é.png"),
    );
    let place = Place {
        region: "us-east-1",
    };
    let v = object_records(&[&a, &b], &place);
    let r = &v["Records"][0];
    assert_eq!(r["eventSource"], "aws:s3");
    assert_eq!(r["eventName"], "ObjectCreated:Put");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["s3"]["bucket"]["name"], "uploads");
    assert_eq!(r["s3"]["bucket"]["arn"], "arn:aws:s3:::uploads");
    assert_eq!(r["s3"]["object"]["key"], "in/red+flower%2B1.jpg");
    assert_eq!(r["s3"]["object"]["size"], 42);
    assert_eq!(r["s3"]["object"]["eTag"], "abc123");
    assert_eq!(v["Records"][1]["s3"]["object"]["key"], "in/%C3%A9.png");
    assert_eq!(v["Records"].as_array().unwrap().len(), 2);
}

fn request(content_type: &str) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        path: "/hello".into(),
        query: "a=1".into(),
        headers: vec![("content-type".into(), content_type.into())],
        source_ip: None,
    }
}

#[test]
fn a_json_body_passes_through_and_anything_else_comes_in_an_envelope() {
    let json = http_event(&request("application/json"), br#"{"n":1}"#, "r", 5);
    assert_eq!(json, br#"{"n":1}"#);
    let bin = http_event(&request("image/png"), &[0, 159, 146], "r1", 5);
    let v: Value = serde_json::from_slice(&bin).unwrap();
    assert_eq!(v["version"], "2.0");
    assert_eq!(v["isBase64Encoded"], true);
    assert_eq!(v["body"], "AJ+S");
    assert_eq!(v["rawPath"], "/hello");
    assert_eq!(v["rawQueryString"], "a=1");
    assert_eq!(v["requestContext"]["http"]["method"], "POST");
    assert_eq!(v["requestContext"]["requestId"], "r1");
    assert_eq!(v["headers"]["content-type"], "image/png");
    // Not JSON although it says so: the envelope, not a broken event.
    let broken = http_event(&request("application/json"), b"{nope", "r", 5);
    let v: Value = serde_json::from_slice(&broken).unwrap();
    assert_eq!(v["isBase64Encoded"], true);
}

#[test]
fn answers_map_back_to_status_headers_and_body() {
    let plain = http_reply(br#"{"labels":[1]}"#).unwrap();
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body, br#"{"labels":[1]}"#);
    let shaped = http_reply(
        br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-N":3},"body":"made","cookies":["a=b"]}"#,
    )
    .unwrap();
    assert_eq!(shaped.status, 201);
    assert_eq!(shaped.body, b"made");
    assert!(
        shaped
            .headers
            .contains(&("content-type".into(), "text/plain".into()))
    );
    assert!(shaped.headers.contains(&("x-n".into(), "3".into())));
    assert!(
        shaped
            .headers
            .contains(&("set-cookie".into(), "a=b".into()))
    );
    let b64 = http_reply(br#"{"statusCode":200,"body":"AJ+S","isBase64Encoded":true}"#).unwrap();
    assert_eq!(b64.body, vec![0, 159, 146]);
    assert!(http_reply(br#"{"statusCode":99}"#).is_err());
    assert!(http_reply(br#"{"statusCode":200,"body":"%%","isBase64Encoded":true}"#).is_err());
}

#[test]
fn batch_item_failures_name_records_by_event_id_or_key() {
    let (a, b, c) = (upload("e1", "a b"), upload("e2", "b"), upload("e3", "c"));
    let events = [&a, &b, &c];
    let answer = br#"{"batchItemFailures":[{"itemIdentifier":"e2"},{"itemIdentifier":"a+b"}]}"#;
    assert_eq!(failed_items(answer, &events).unwrap(), vec![1, 0]);
    assert_eq!(failed_items(b"null", &events).unwrap(), Vec::<usize>::new());
    assert_eq!(
        failed_items(br#"{"batchItemFailures":[]}"#, &events).unwrap(),
        Vec::<usize>::new()
    );
    let unknown = br#"{"batchItemFailures":[{"itemIdentifier":"zz"}]}"#;
    assert!(failed_items(unknown, &events).unwrap_err().contains("zz"));
}

#[test]
fn error_reports_read_as_one_line() {
    let body = br#"{"errorMessage":"bad record 3","errorType":"ValueError","stackTrace":[]}"#;
    assert_eq!(error_line(body, None), "ValueError: bad record 3");
    assert_eq!(
        error_line(b"not json", Some("Runtime.Custom")),
        "Runtime.Custom: not json"
    );
}

#[test]
fn request_ids_look_like_lambdas_and_differ() {
    let (a, b) = (request_id(), request_id());
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(a.matches('-').count(), 4);
}

#[test]
fn a_cron_firing_is_an_eventbridge_scheduled_event() {
    let e = ScheduledEvent {
        id: "0123abcd".into(),
        time: "2026-12-07T18:35:00Z".into(),
        rule: "report-cron-0".into(),
        detail: serde_json::json!({"window": "5m"}),
    };
    let v = scheduled_event(
        &e,
        &Place {
            region: "eu-west-1",
        },
    );
    assert_eq!(v["detail-type"], "Scheduled Event");
    assert_eq!(v["source"], "aws.events");
    assert_eq!(v["time"], "2026-12-07T18:35:00Z");
    assert_eq!(v["detail"]["window"], "5m");
    assert_eq!(
        v["resources"][0],
        "arn:aws:events:eu-west-1:000000000000:rule/report-cron-0"
    );
    let bare = ScheduledEvent {
        detail: serde_json::Value::Null,
        ..e
    };
    assert_eq!(
        scheduled_event(&bare, &Place { region: "x" })["detail"],
        serde_json::json!({})
    );
}
