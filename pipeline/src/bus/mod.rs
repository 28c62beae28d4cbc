//! The `Bus` seam: it holds accepted events until each function that wants one has run and its
//! outputs are written (DESIGN.md step 2). The embedded implementation (`embedded.rs`) keeps
//! them in redb, so a crash or a restart delivers again everything that was not acknowledged;
//! one conformance suite (`pipeline/tests/bus.rs`) is written so that a second implementation
//! (NATS JetStream) runs it unchanged. Time comes from an injected `Clock`, so backoff is tested
//! with tokio's paused time.

mod clock;
mod embedded;
mod jetstream;
mod writer;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use clock::{Clock, SystemClock, TokioClock};
pub use embedded::EmbeddedBus;
pub use jetstream::{JetStreamBus, JetStreamSettings};

use crate::events::Event;

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    #[error("the bus store failed: {0}")]
    Store(String),
    #[error("the bus is closed")]
    Closed,
}

/// The queue that a reprocess job's pairs for `function` wait in, apart from its live events,
/// so its consumer can take them only when live work leaves a worker idle. `~` is in no
/// function's name (config) and is allowed in NATS subjects and consumer names.
pub fn job_lane(function: &str) -> String {
    format!("{function}~jobs")
}

/// The queue that asynchronous invokes of `function` wait in (`Prefer: respond-async`): every
/// function has one, whatever its triggers.
pub fn async_lane(function: &str) -> String {
    format!("{function}~async")
}

/// Which of a function's queues a lane is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Its triggers' events.
    Live,
    /// Its reprocess jobs' pairs, run only on workers live work leaves idle.
    Jobs,
    /// Its asynchronous invokes.
    Async,
}

/// The function whose queue `lane` is, and which queue.
pub fn lane_function(lane: &str) -> (&str, Lane) {
    if let Some(f) = lane.strip_suffix("~jobs") {
        (f, Lane::Jobs)
    } else if let Some(f) = lane.strip_suffix("~async") {
        (f, Lane::Async)
    } else {
        (lane, Lane::Live)
    }
}

/// What identifies a delivery to the bus that made it (a sequence number, a JetStream message):
/// opaque to everyone else.
#[derive(Clone)]
pub struct Handle(Arc<dyn Any + Send + Sync>);

impl Handle {
    pub fn new<T: Any + Send + Sync>(inner: T) -> Handle {
        Handle(Arc::new(inner))
    }

    pub fn get<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle(..)")
    }
}

/// One (event, function) pair handed to a consumer, which holds it until it acks, retries,
/// postpones or dead-letters it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub function: String,
    pub event: Event,
    /// Attempts before this one.
    pub attempts: u32,
    pub handle: Handle,
}

/// A pair that will not be retried, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    pub function: String,
    pub bucket: String,
    pub key: String,
    pub kind: String,
    pub reason: String,
    pub attempts: u32,
    /// Seconds since the epoch.
    pub time: u64,
    /// The event given up on, so it can be sent again (`retry`); left out by letters written
    /// before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
}

impl DeadLetter {
    /// The letter for giving up on `d` now; its id is the bus's to give. It names the function,
    /// whichever of its queues the pair waited in.
    pub fn of(d: &Delivery, kind: &str, reason: &str, clock: &dyn Clock) -> DeadLetter {
        DeadLetter {
            id: 0,
            function: lane_function(&d.function).0.to_string(),
            bucket: d.event.object.bucket.clone(),
            key: d.event.object.key.clone(),
            kind: kind.into(),
            reason: reason.into(),
            attempts: d.attempts + 1,
            time: clock.now_ms() / 1000,
            event: Some(d.event.clone()),
        }
    }

    /// The event to send again: the one kept, or (a letter from before events were kept) one
    /// made from the bucket and key. A fresh id and source, so it is no duplicate and no
    /// reprocess job's pair.
    pub fn retried(&self) -> Event {
        let mut event = self.event.clone().unwrap_or_else(|| Event {
            id: String::new(),
            source: String::new(),
            time: String::new(),
            name: "s3:ObjectCreated:Put".into(),
            object: crate::events::ObjectRef {
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                size: None,
                etag: None,
                version: None,
            },
            ..Default::default()
        });
        event.id = format!("{}-retry{}", event.id, self.id);
        event.source = RETRY_SOURCE.into();
        event.time = crate::events::now();
        event
    }
}

/// A retried dead letter's event's `source`.
pub const RETRY_SOURCE: &str = "weir:retry";

#[async_trait::async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// Record `event` for each of `functions`; durable when this returns.
    async fn publish(&self, event: Event, functions: Vec<String>) -> Result<(), BusError>;

    /// Up to `max` pairs due for `function` (at least one), waiting (for a publish, or for a
    /// retry to come due; never polling on a fixed interval) until there is one. A bus across
    /// the network answers a backlog in one round trip instead of one per pair. Concurrent
    /// callers for one function never hold the same pair. `Closed` once the bus is closed.
    async fn next_batch(&self, function: &str, max: usize) -> Result<Vec<Delivery>, BusError>;

    /// The next pair due for `function`: `next_batch` of one.
    async fn next(&self, function: &str) -> Result<Delivery, BusError> {
        self.next_batch(function, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| BusError::Store("the bus answered a pull with no pair".into()))
    }

    /// The function finished with the event and its outputs are written.
    async fn ack(&self, d: &Delivery) -> Result<(), BusError>;

    /// Deliver again after `after`, counting the attempt.
    async fn retry(&self, d: &Delivery, after: Duration) -> Result<(), BusError>;

    /// Deliver again after `after` without counting an attempt: the pair could not start (no
    /// room), which says nothing about the event.
    async fn postpone(&self, d: &Delivery, after: Duration) -> Result<(), BusError>;

    /// Give up on the pair, keeping the kind of failure and the reason.
    async fn dead_letter(&self, d: &Delivery, kind: &str, reason: &str) -> Result<(), BusError>;

    /// Dead letters, newest first, `limit` at most, older than id `before` when given.
    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<DeadLetter>, BusError>;

    /// One dead letter; `None` when there is no such id (never was, or removed).
    async fn dead_letter_by_id(&self, id: u64) -> Result<Option<DeadLetter>, BusError>;

    /// Remove dead letters (retried, or purged); how many of `ids` were there.
    async fn remove_dead_letters(&self, ids: &[u64]) -> Result<u64, BusError>;

    /// Pairs not yet finished.
    async fn depth(&self) -> Result<u64, BusError>;

    /// Whether the bus can take and hand out work now (`/healthz/ready`): by default, whether
    /// it answers its depth.
    async fn ready(&self) -> Result<(), BusError> {
        self.depth().await.map(drop)
    }

    /// Pairs not yet finished for one function (waiting or held by a consumer, on any node).
    async fn pending(&self, function: &str) -> Result<u64, BusError>;

    /// Finish the writes in progress; every later call, and every waiting `next`, is `Closed`.
    async fn close(&self);
}
