//! Events and answers as AWS Lambda shapes them, so handlers written for Lambda run unchanged:
//! S3 notifications as `Records[]`, HTTP calls as the body (JSON) or an API Gateway v2 envelope,
//! answers read back as API Gateway reads them, and `batchItemFailures` as SQS batches report
//! them. Pure: no I/O, tested below.

use base64::Engine;
use serde_json::{Value, json};

use crate::origin::{HttpRequest, ObjectEvent, Reply, ScheduledEvent};

/// What the handler is told about where it runs.
#[derive(Debug, Clone)]
pub struct Place<'a> {
    pub region: &'a str,
}

/// One event with a record per object, as S3 notifies Lambda (and as SQS batches several).
pub fn object_records(events: &[&ObjectEvent], place: &Place) -> Value {
    let records: Vec<Value> = events.iter().map(|e| object_record(e, place)).collect();
    json!({ "Records": records })
}

fn object_record(e: &ObjectEvent, place: &Place) -> Value {
    let name = e.name.strip_prefix("s3:").unwrap_or(&e.name);
    let mut object = json!({
        "key": encode_key(&e.key),
        "size": e.size.unwrap_or(0),
        "eTag": e.etag.as_deref().unwrap_or("").trim_matches('"'),
        "sequencer": e.id,
    });
    if let Some(v) = &e.version {
        object["versionId"] = json!(v);
    }
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": place.region,
        "eventTime": e.time,
        "eventName": name,
        // Not in S3's own records: the id a handler names in `batchItemFailures`.
        "eventID": e.id,
        "userIdentity": { "principalId": "weir" },
        "requestParameters": { "sourceIPAddress": "127.0.0.1" },
        "responseElements": { "x-amz-request-id": e.id, "x-amz-id-2": e.id },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "weir",
            "bucket": {
                "name": e.bucket,
                "ownerIdentity": { "principalId": "weir" },
                "arn": format!("arn:aws:s3:::{}", e.bucket),
            },
            "object": object,
        },
    })
}

/// A cron firing as EventBridge Scheduler hands it to Lambda: a `Scheduled Event` whose
/// `detail` is the trigger's payload (an empty object when it has none).
pub fn scheduled_event(e: &ScheduledEvent, place: &Place) -> Value {
    let detail = match &e.detail {
        Value::Null => json!({}),
        d => d.clone(),
    };
    json!({
        "version": "0",
        "id": e.id,
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": e.time,
        "region": place.region,
        "resources": [format!("arn:aws:events:{}:{ACCOUNT}:rule/{}", place.region, e.rule)],
        "detail": detail,
    })
}

/// The account ARNs name: Weir has none, and Lambda's local tools use this one.
const ACCOUNT: &str = "000000000000";

/// A key as S3 writes it in notifications: form-encoded (a space is `+`), slashes kept, so
/// handlers' `unquote_plus(key)` gives the key back.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An HTTP call's event: a JSON body passes through as it is; any other body comes base64 in
/// an API Gateway v2 envelope with the request's method, path, query and headers.
pub fn http_event(req: &HttpRequest, body: &[u8], request_id: &str, now_ms: u64) -> Vec<u8> {
    let content_type = header(&req.headers, "content-type").unwrap_or("");
    let says_json = content_type.is_empty() || content_type.contains("json");
    if says_json && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return body.to_vec();
    }
    let headers: serde_json::Map<String, Value> = req
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": req.path,
        "rawQueryString": req.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "weir",
            "http": {
                "method": req.method,
                "path": req.path,
                "protocol": "HTTP/1.1",
                "sourceIp": req.source_ip.as_deref().unwrap_or("127.0.0.1"),
                "userAgent": header(&req.headers, "user-agent").unwrap_or(""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": now_ms,
        },
        "body": b64.encode(body),
        "isBase64Encoded": true,
    });
    event.to_string().into_bytes()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A handler's answer as API Gateway (payload 2.0) reads it: an object with `statusCode` gives
/// the status, headers and body (base64 when `isBase64Encoded`); anything else is a JSON body
/// with status 200.
pub fn http_reply(answer: &[u8]) -> Result<Reply, String> {
    let parsed: Option<Value> = serde_json::from_slice(answer).ok();
    let Some(Value::Object(map)) = parsed.as_ref().filter(|v| v.get("statusCode").is_some()) else {
        return Ok(Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: answer.to_vec(),
        });
    };
    let status = map["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (100..=599).contains(s))
        .ok_or_else(|| format!("statusCode {} is not an HTTP status", map["statusCode"]))?;
    let mut headers: Vec<(String, String)> = match map.get("headers") {
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.to_ascii_lowercase(), v)
            })
            .collect(),
        _ => Vec::new(),
    };
    if let Some(Value::Array(cookies)) = map.get("cookies") {
        for c in cookies.iter().filter_map(Value::as_str) {
            headers.push(("set-cookie".into(), c.to_string()));
        }
    }
    let body = match map.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if map.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("the body is marked isBase64Encoded but is not: {e}"))?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    if !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The records a handler reported failed (`{"batchItemFailures": [{"itemIdentifier": id}]}`):
/// their positions in `events`, matched by event id or by key (as stored or as encoded).
/// `Err` when the report names a record the batch does not have.
pub fn failed_items(answer: &[u8], events: &[&ObjectEvent]) -> Result<Vec<usize>, String> {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(answer) else {
        return Ok(Vec::new());
    };
    let Some(Value::Array(items)) = map.get("batchItemFailures") else {
        return Ok(Vec::new());
    };
    let mut failed = Vec::new();
    for item in items {
        let id = item
            .get("itemIdentifier")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a batchItemFailures entry has no itemIdentifier: {item}"))?;
        let at = events
            .iter()
            .position(|e| e.id == id || e.key == id || encode_key(&e.key) == id)
            .ok_or_else(|| format!("batchItemFailures names {id:?}, which is not in the batch"))?;
        if !failed.contains(&at) {
            failed.push(at);
        }
    }
    Ok(failed)
}

/// The longest error message kept, in bytes.
pub const MAX_MESSAGE: usize = 4096;

/// A handler's error report (`/invocation/{id}/error`, `/init/error`) as one line:
/// `errorType: errorMessage`. The header's type wins when the body names none.
pub fn error_line(body: &[u8], header_type: Option<&str>) -> String {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = parsed
        .get("errorType")
        .and_then(Value::as_str)
        .or(header_type)
        .unwrap_or("Unhandled");
    let mut message = match parsed.get("errorMessage") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE)]).into_owned(),
    };
    // It ends up in logs and dead letters: a huge repr is cut.
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    format!("{kind}: {message}")
}

/// An id in the form Lambda gives requests (8-4-4-4-12 hex digits), unique in this process.
pub fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    h.write_u64(a);
    let b = h.finish();
    let x = (u128::from(a) << 64) | u128::from(b);
    let s = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..]
    )
}

#[cfg(test)]
#[path = "lambda_tests.rs"]
mod tests;
