//! Where an input came from, for functions that run users' own code (`Function::external`):
//! such code is handed the event that caused the invocation, shaped as the code expects,
//! instead of the object's bytes, and an HTTP caller gets the code's own status and headers.

/// What caused one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An object event from the bus (an upload, a poller's find).
    Object(ObjectEvent),
    /// An HTTP invoke; the body is the input's bytes.
    Http(HttpRequest),
    /// A cron trigger's firing; its payload is the input's bytes too.
    Scheduled(ScheduledEvent),
}

/// One firing of a cron trigger, as the bus carried it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScheduledEvent {
    /// The event's id on the bus: the same for one slot on every node.
    pub id: String,
    /// The slot it fired for (RFC 3339, UTC), not the moment it ran.
    pub time: String,
    /// Which trigger: `<function>-cron-<index>`, the rule name handlers see.
    pub rule: String,
    /// The trigger's `payload`, as JSON.
    pub detail: serde_json::Value,
}

/// An object event as the bus carried it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectEvent {
    /// The event's id on the bus: stable across redeliveries.
    pub id: String,
    /// Where it came from (`aws:s3`, `weir:s3`…).
    pub source: String,
    /// RFC 3339.
    pub time: String,
    /// In the `s3:` form, e.g. `s3:ObjectCreated:Put`.
    pub name: String,
    pub bucket: String,
    /// Decoded: the key as stored.
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version: Option<String>,
}

/// An HTTP request to a function, less its body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The path as called (`/v1/functions/f/invoke` or a trigger's own path).
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Lower-case names, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The peer's address, when known.
    pub source_ip: Option<String>,
}

/// An HTTP answer chosen by the function itself: it replaces Weir's artifacts envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// Its `content-type` header (`application/json` when it has none).
    pub fn content_type(&self) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map_or("application/json", |(_, v)| v.as_str())
    }
}
