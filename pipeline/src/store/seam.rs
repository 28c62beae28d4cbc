//! The `ObjectStore` seam: what the dispatcher, the sinks and the bucket poller need from a store,
//! and nothing more. Weir's local store and any S3 (`s3.rs`) implement it; one conformance suite
//! (`pipeline/tests/object_store.rs`) runs against both. Errors carry one `kind()` that decides
//! retry or dead letter without matching strings.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use weir_functions::Source;

use super::StoreError;

/// User metadata (`x-amz-meta-*`): names lower-cased, values as given.
pub type Metadata = BTreeMap<String, String>;

/// What a listing and a head report about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    /// Milliseconds since the epoch.
    pub modified_ms: u64,
}

/// An object read whole or opened, with what the store said about the version it gave.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub info: ObjectInfo,
    pub body: T,
}

/// A head: the listing's facts plus what only a head returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub info: ObjectInfo,
    pub content_type: Option<String>,
    pub metadata: Metadata,
}

/// How an object is written.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub metadata: Metadata,
}

/// One page of a listing: keys under `prefix` after `start_after`, in S3's order.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub prefix: String,
    pub start_after: Option<String>,
    /// 1 to 1000 (S3's limit); 0 means 1000.
    pub max: usize,
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub objects: Vec<ObjectInfo>,
    /// Where the next page starts (its `start_after`); `None` on the last page.
    pub next: Option<String>,
}

/// What a failure means to a caller: the one decision the dispatcher and the poller make on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No such object or bucket: permanent for this event.
    NotFound,
    /// The store refused the credentials or the request's permissions: permanent until someone
    /// changes them, so a dead letter (which can be retried) rather than a retry loop.
    Denied,
    /// The request can never succeed (a bad name, a precondition, an object over the limit).
    BadRequest,
    /// The object is larger than the caller's limit.
    TooLarge,
    /// May work next time: I/O, a timeout, the endpoint down, a 5xx, throttling.
    Transient,
}

impl StoreErrorKind {
    pub fn label(self) -> &'static str {
        match self {
            StoreErrorKind::NotFound => "not_found",
            StoreErrorKind::Denied => "denied",
            StoreErrorKind::BadRequest => "bad_request",
            StoreErrorKind::TooLarge => "too_large",
            StoreErrorKind::Transient => "transient",
        }
    }
}

/// A store of buckets of objects. Async; a local implementation does its blocking I/O on
/// tokio's blocking threads.
#[async_trait::async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Make sure `bucket` exists (created when the store allows it); at start, for the buckets
    /// that triggers and outputs name.
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError>;

    /// The whole object, refused (`TooLarge`) when over `limit` bytes, before reading it.
    async fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Fetched<Bytes>, StoreError>;

    /// The object opened for reads by offset, never held whole in memory (a remote object is
    /// spooled to an unlinked temporary file); refused when over `limit` bytes.
    async fn open(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<Fetched<Arc<dyn Source>>, StoreError>;

    /// Several objects opened in one go, each result in the order asked; `None` when the store
    /// has nothing cheaper than one `open` each (a remote store: each is its own round trip, and
    /// one slow object must not hold the others). The local store opens them all in one trip to
    /// a blocking thread: for small, cheap functions that trip per object was most of the cost.
    async fn open_many(
        &self,
        objects: &[(&str, &str)],
        limit: u64,
    ) -> Option<Vec<Result<Fetched<Arc<dyn Source>>, StoreError>>> {
        let _ = (objects, limit);
        None
    }

    /// Write the object with its metadata (a remote store uses multipart above a threshold).
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &PutOptions,
    ) -> Result<ObjectInfo, StoreError>;

    async fn head(&self, bucket: &str, key: &str) -> Result<Head, StoreError>;

    async fn list(&self, bucket: &str, request: &PageRequest) -> Result<Page, StoreError>;

    /// Remove the object; removing one that is not there succeeds, as in S3.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError>;
}

/// The page size a request asks for, within S3's limits.
pub fn page_size(max: usize) -> usize {
    if max == 0 { 1000 } else { max.min(1000) }
}
