//! A Lambda handler written against AWS's `lambda_runtime` crate, as it would be deployed to
//! Lambda; Weir's `process` kind runs the binary unchanged. For S3 records it reads each object
//! (aws-sdk-s3, the endpoint and keys from the environment) and answers with their sizes; for
//! any other event it answers with the event, its request id and its process id, or fails when
//! the event asks it to.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    // Path-style: an endpoint given by address (Weir's built-in one) has no bucket subdomains.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    );
    let s3 = &s3;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handle(s3, event).await
    }))
    .await
}

async fn handle(s3: &aws_sdk_s3::Client, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    let Some(records) = payload.get("Records").and_then(Value::as_array) else {
        if let Some(why) = payload.get("fail").and_then(Value::as_str) {
            return Err(why.to_string().into());
        }
        return Ok(json!({
            "runtime": "rust",
            "pid": std::process::id(),
            "request_id": context.request_id,
            "event": payload,
        }));
    };
    let mut sizes = serde_json::Map::new();
    for r in records {
        let bucket = r["s3"]["bucket"]["name"].as_str().unwrap_or_default();
        let key = decode(r["s3"]["object"]["key"].as_str().unwrap_or_default());
        let object = s3.get_object().bucket(bucket).key(&key).send().await?;
        let bytes = object.body.collect().await?.into_bytes();
        sizes.insert(key, json!(bytes.len()));
    }
    Ok(json!({ "runtime": "rust", "sizes": sizes }))
}

/// A key as S3 notifications encode it (`+` for a space, `%XX` for the rest).
fn decode(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}
