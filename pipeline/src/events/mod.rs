//! The one shape every trigger produces (DESIGN.md, "The way an event travels", step 1).

pub mod s3_notification;

use serde::{Deserialize, Serialize};

/// An object in a bucket, as an event refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// Decoded: the key as stored, whatever encoding the sender used.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version: Option<String>,
}

/// Something happened that functions may want to run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Stable for the same notification, so a redelivered one is recognised.
    pub id: String,
    /// Where it came from, e.g. `aws:s3`, `minio:s3`, `ceph:s3`.
    pub source: String,
    /// As the sender gave it (RFC 3339).
    pub time: String,
    /// Always in the `s3:` form, e.g. `s3:ObjectCreated:Put`.
    pub name: String,
    pub object: ObjectRef,
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
