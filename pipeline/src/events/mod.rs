//! The one shape every trigger produces (DESIGN.md, "The way an event travels", step 1).

pub mod s3_notification;

use serde::{Deserialize, Serialize};

/// An object in a bucket, as an event refers to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// Decoded: the key as stored, whatever encoding the sender used.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version: Option<String>,
}

impl ObjectRef {
    /// An object as a listing of `bucket` found it (a poller's round, a reprocess job's page).
    pub fn listed(bucket: &str, o: &crate::store::ObjectInfo) -> ObjectRef {
        ObjectRef {
            bucket: bucket.to_string(),
            key: o.key.clone(),
            size: Some(o.size),
            etag: Some(o.etag.clone()),
            version: None,
        }
    }
}

/// Something happened that functions may want to run on. `Default` leaves the input it may carry
/// (`payload`, `request`) out, as an object's event has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable for the same notification, so a redelivered one is recognised.
    pub id: String,
    /// Where it came from, e.g. `aws:s3`, `minio:s3`, `ceph:s3`.
    pub source: String,
    /// As the sender gave it (RFC 3339).
    pub time: String,
    /// Always in the `s3:` form, e.g. `s3:ObjectCreated:Put`.
    pub name: String,
    /// For an event that carries its input (`payload`), no stored object: its key names where
    /// it came from (a cron trigger's `<rule>/<slot>`), for output templates.
    pub object: ObjectRef,
    /// The input itself, when the event carries it rather than naming an object (a cron
    /// trigger's payload): a string is given as its text, anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// An asynchronous invoke, carried whole (its object names none either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Box<Request>>,
}

/// An asynchronous invoke, carried on the bus so that it outlives a restart before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The invocation's id, as `GET /v1/invocations/{id}` names it; it stays when a dead letter
    /// is retried, which gives the event a new id.
    pub invocation: String,
    /// The path called and its query (which also chooses the reply's form, as for a call that
    /// waits).
    pub path: String,
    pub query: String,
    /// Lower-case names as sent, less `authorization`.
    pub headers: Vec<(String, String)>,
    /// The body, base64 (standard alphabet).
    pub body: String,
}

/// Now, as an event's `time` (RFC 3339, milliseconds, UTC): what a trigger stamps on the events
/// it makes.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// FNV-1a over the parts, so ids are stable across builds and machines (std's hasher is not).
pub fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
