//! S3 event notification bodies as AWS, MinIO and Ceph RGW send them, turned into `Event`s.
//!
//! Keys arrive encoded differently by sender: AWS and MinIO form-encode them (`+` is a space,
//! `%2B` a plus; MinIO also writes `/` as `%2F`), Ceph RGW (`eventSource: ceph:s3`) sends them raw.

use serde::Deserialize;

use super::{Event, ObjectRef, stable_id};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not an S3 notification: {0}")]
    Malformed(String),
    #[error("Records[{index}]: {reason}")]
    BadRecord { index: usize, reason: String },
}

#[derive(Deserialize)]
struct Body {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    /// `s3:TestEvent` in the test message S3 sends when a notification is configured.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_source: Option<String>,
    event_time: Option<String>,
    event_name: Option<String>,
    s3: Option<S3Part>,
}

#[derive(Deserialize)]
struct S3Part {
    bucket: Option<Named>,
    object: Option<ObjectPart>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectPart {
    key: Option<String>,
    size: Option<u64>,
    e_tag: Option<String>,
    version_id: Option<String>,
    sequencer: Option<String>,
}

/// The events in a notification body; empty for a test message.
pub fn parse(body: &[u8]) -> Result<Vec<Event>, NotificationError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| NotificationError::Malformed(e.to_string()))?;
    let Some(records) = body.records else {
        return match body.event.as_deref() {
            Some("s3:TestEvent") => Ok(Vec::new()),
            _ => Err(NotificationError::Malformed("it has no Records".into())),
        };
    };
    records
        .into_iter()
        .enumerate()
        .map(|(index, r)| event(r).map_err(|reason| NotificationError::BadRecord { index, reason }))
        .collect()
}

fn event(r: Record) -> Result<Event, String> {
    let source = r.event_source.unwrap_or_else(|| "aws:s3".into());
    let name = r.event_name.ok_or("eventName is missing")?;
    let name = if name.starts_with("s3:") {
        name
    } else {
        format!("s3:{name}")
    };
    let s3 = r.s3.ok_or("s3 is missing")?;
    let bucket = s3
        .bucket
        .and_then(|b| b.name)
        .ok_or("s3.bucket.name is missing")?;
    let object = s3.object.ok_or("s3.object is missing")?;
    let raw_key = object.key.ok_or("s3.object.key is missing")?;
    let key = if source == "ceph:s3" {
        raw_key
    } else {
        form_decode(&raw_key)?
    };
    if key.is_empty() {
        return Err("s3.object.key is empty".into());
    }
    let time = r.event_time.unwrap_or_default();
    let etag = object.e_tag.filter(|e| !e.is_empty());
    let id = stable_id(&[
        &source,
        &bucket,
        &key,
        object.version_id.as_deref().unwrap_or(""),
        etag.as_deref().unwrap_or(""),
        object.sequencer.as_deref().unwrap_or(""),
        &time,
    ]);
    let object = ObjectRef {
        bucket,
        key,
        size: object.size,
        etag,
        version: object.version_id,
    };
    Ok(Event {
        id,
        source,
        time,
        name,
        object,
        ..Default::default()
    })
}

/// `+` is a space, `%XX` a byte; the bytes must be UTF-8.
fn form_decode(raw: &str) -> Result<String, String> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("s3.object.key {raw:?} does not decode to UTF-8"))
}

#[cfg(test)]
#[path = "s3_notification_tests.rs"]
mod tests;
