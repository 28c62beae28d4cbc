//! NATS JetStream behind the `Bus` seam, so several Weir nodes share one queue. One work-queue
//! stream holds every (event, function) pair on `<stream>.fn.<function>`; each function has one
//! durable pull consumer that every node pulls from; dead letters go to `<stream>-dead`. An
//! event's id is its message id (`Nats-Msg-Id`), so a notification sent twice is stored once.
//!
//! Attempts and due times travel in headers (`Weir-Attempts`, `Weir-Due`): a retry or a
//! postponement publishes the pair again with its new count and due time, then acks the old
//! delivery, so a postponement spends no attempt (JetStream's own delivery count cannot tell the
//! two apart). A delivery that comes before its due time is nak'd with the delay left. While a
//! consumer holds a delivery, an in-progress ack every third of `ack_wait` (one task for all the
//! node's deliveries, `held.rs`) keeps it from being redelivered; a node that dies stops sending
//! them, and its deliveries return within `ack_wait`.

mod held;
mod setup;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::watch;

use held::{Held, HeldSet};

use super::{Bus, BusError, Clock, DeadLetter, Delivery, Handle};
use crate::events::Event;

const ATTEMPTS: &str = "Weir-Attempts";
const DUE: &str = "Weir-Due";
/// The most pairs one pull asks for.
const MAX_PULL: usize = 256;

/// Where the stream lives and how it is made.
#[derive(Debug, Clone)]
pub struct JetStreamSettings {
    /// One server, or a cluster's servers separated by commas.
    pub url: String,
    /// The stream's name; subjects and the dead-letter stream are named after it.
    pub stream: String,
    pub replicas: usize,
    /// How long a delivery stays with a consumer that neither acks nor says it is working.
    pub ack_wait: Duration,
    /// A `.creds` file (NATS decentralised auth), or a token; neither for an open server.
    pub credentials: Option<std::path::PathBuf>,
    pub token: Option<String>,
    /// How long to wait at start for JetStream to answer (a cluster may still be electing).
    pub start_wait: Duration,
}

#[derive(Clone)]
pub struct JetStreamBus(Arc<Inner>);

struct Inner {
    /// Publishing: the front door's events, retries, dead letters, and what reads the streams.
    js: jetstream::Context,
    /// Pulling and acknowledging, on a connection of its own (`setup.rs` says why).
    pulls: jetstream::Context,
    settings: JetStreamSettings,
    clock: Arc<dyn Clock>,
    consumers: tokio::sync::Mutex<HashMap<String, PullConsumer>>,
    /// The deliveries this node holds, kept alive by one task (`held::keep_alive`).
    held: Arc<std::sync::Mutex<HeldSet>>,
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for JetStreamBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamBus")
            .field("url", &self.0.settings.url)
            .field("stream", &self.0.settings.stream)
            .finish()
    }
}

fn failed(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Store(format!("{what}: {e}"))
}

fn held(d: &Delivery) -> Result<&Held, BusError> {
    d.handle
        .get::<Held>()
        .ok_or_else(|| BusError::Store("a delivery from another bus".into()))
}

impl Inner {
    /// `Closed` once the bus is closed: nothing is sent after that.
    fn check_open(&self) -> Result<(), BusError> {
        if *self.closed.borrow() {
            return Err(BusError::Closed);
        }
        Ok(())
    }

    /// The dead-letter stream, and its name for errors.
    async fn dead_stream(&self) -> Result<(String, jetstream::stream::Stream), BusError> {
        self.check_open()?;
        let name = format!("{}-dead", self.settings.stream);
        let stream = self
            .js
            .get_stream(&name)
            .await
            .map_err(|e| failed(&name, e))?;
        Ok((name, stream))
    }

    fn subject(&self, function: &str) -> String {
        format!("{}.fn.{function}", self.settings.stream)
    }

    async fn consumer(&self, function: &str) -> Result<PullConsumer, BusError> {
        let mut consumers = self.consumers.lock().await;
        if let Some(c) = consumers.get(function) {
            return Ok(c.clone());
        }
        let stream = self
            .pulls
            .get_stream(&self.settings.stream)
            .await
            .map_err(|e| failed("the stream", e))?;
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(function.to_string()),
            filter_subject: self.subject(function),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            max_deliver: -1,
            ..Default::default()
        };
        let mut c: PullConsumer = stream
            .get_or_create_consumer(function, config.clone())
            .await
            .map_err(|e| failed(&format!("the consumer {function}"), e))?;
        let have = &c
            .info()
            .await
            .map_err(|e| failed(&format!("the consumer {function}"), e))?
            .config;
        if have.filter_subject != config.filter_subject
            || have.ack_policy != config.ack_policy
            || have.ack_wait != config.ack_wait
        {
            return Err(BusError::Store(format!(
                "the consumer {function} exists with filter {:?}, ack wait {:?}; Weir needs {:?}, \
                 {:?} (remove it to let Weir make it)",
                have.filter_subject, have.ack_wait, config.filter_subject, config.ack_wait
            )));
        }
        consumers.insert(function.to_string(), c.clone());
        Ok(c)
    }

    /// Record one pair, with its attempts so far and when it is due; durable on return.
    async fn put(
        &self,
        event: &Event,
        function: &str,
        attempts: u32,
        due_ms: u64,
    ) -> Result<(), BusError> {
        self.check_open()?;
        let mut headers = HeaderMap::new();
        // A first delivery carries only its id: absent counts read as zero, and every header
        // costs the server a parse and a place in the stream for each event.
        let id = match (attempts, due_ms) {
            (0, 0) => format!("{}/{function}", event.id),
            _ => {
                headers.insert(ATTEMPTS, attempts.to_string().as_str());
                headers.insert(DUE, due_ms.to_string().as_str());
                format!("{}/{function}/{attempts}/{due_ms}", event.id)
            }
        };
        headers.insert("Nats-Msg-Id", id.as_str());
        let payload = Bytes::from(serde_json::to_vec(event).map_err(|e| failed("an event", e))?);
        self.js
            .publish_with_headers(self.subject(function), headers, payload)
            .await
            .map_err(|e| failed("publishing", e))?
            .await
            .map_err(|e| failed("publishing (not confirmed)", e))?;
        Ok(())
    }

    /// The message's delivery is over: stop keeping it alive and tell the server.
    async fn settle(&self, d: &Delivery, kind: AckKind) -> Result<(), BusError> {
        self.check_open()?;
        let h = held(d)?;
        h.release();
        h.message
            .double_ack_with(kind)
            .await
            .map_err(|e| failed("acknowledging", e))
    }

    async fn again(&self, d: &Delivery, attempts: u32, after: Duration) -> Result<(), BusError> {
        let due = self.clock.now_ms() + after.as_millis() as u64;
        self.put(&d.event, &d.function, attempts, due).await?;
        self.settle(d, AckKind::Ack).await
    }

    /// A pulled message as a delivery: `None` when it is not due yet (given back with the delay
    /// left) or not an event at all (terminated: it can never be delivered).
    async fn deliver(&self, function: &str, message: jetstream::Message) -> Option<Delivery> {
        let due = header_u64(&message, DUE);
        let now = self.clock.now_ms();
        if due > now {
            let wait = Duration::from_millis(due - now);
            let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
            return None;
        }
        let event: Event = match serde_json::from_slice(&message.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "a message on the bus is not an event; dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return None;
            }
        };
        let attempts = header_u64(&message, ATTEMPTS) as u32;
        Some(Delivery {
            function: function.to_string(),
            event,
            attempts,
            handle: Handle::new(Held::new(&self.held, message)),
        })
    }
}

fn header_u64(m: &jetstream::Message, name: &str) -> u64 {
    m.headers
        .as_ref()
        .and_then(|h| h.get(name))
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0)
}

impl JetStreamBus {
    /// The connection, for what else speaks NATS (the subject trigger).
    pub fn client(&self) -> async_nats::Client {
        self.0.js.client()
    }

    /// Create (or check) each function's consumer now, so a mismatch stops the start.
    pub async fn prepare(&self, functions: &[String]) -> Result<(), BusError> {
        for f in functions {
            self.0.consumer(f).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Bus for JetStreamBus {
    async fn publish(&self, event: Event, functions: Vec<String>) -> Result<(), BusError> {
        self.0.check_open()?;
        let all = functions.iter().map(|f| self.0.put(&event, f, 0, 0));
        futures::future::try_join_all(all).await.map(drop)
    }

    async fn next_batch(&self, function: &str, max: usize) -> Result<Vec<Delivery>, BusError> {
        let consumer = self.0.consumer(function).await?;
        let mut closed = self.0.closed.subscribe();
        let max = max.clamp(1, MAX_PULL);
        loop {
            if *closed.borrow() {
                return Err(BusError::Closed);
            }
            // One round trip: the server answers with what is there, up to `max`, or waits
            // (a long poll) until one comes or `expires` passes. `expires` also arms the
            // client's own timer, so a pull whose server died mid-answer ends instead of
            // waiting forever.
            let pull = consumer
                .fetch()
                .max_messages(max)
                .expires(Duration::from_secs(5))
                .messages();
            let mut batch = tokio::select! {
                b = pull => b.map_err(|e| failed("pulling", e))?,
                _ = closed.wait_for(|c| *c) => return Err(BusError::Closed),
            };
            let mut messages = Vec::new();
            loop {
                let message = tokio::select! {
                    m = batch.next() => m,
                    _ = closed.wait_for(|c| *c) => return Err(BusError::Closed),
                };
                match message {
                    Some(m) => messages.push(m.map_err(|e| failed("pulling", e))?),
                    None => break,
                }
            }
            let mut out = Vec::with_capacity(messages.len());
            for message in messages {
                if let Some(d) = self.0.deliver(function, message).await {
                    out.push(d);
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn ack(&self, d: &Delivery) -> Result<(), BusError> {
        self.0.settle(d, AckKind::Ack).await
    }

    async fn retry(&self, d: &Delivery, after: Duration) -> Result<(), BusError> {
        self.0.again(d, d.attempts + 1, after).await
    }

    async fn postpone(&self, d: &Delivery, after: Duration) -> Result<(), BusError> {
        self.0.again(d, d.attempts, after).await
    }

    async fn dead_letter(&self, d: &Delivery, kind: &str, reason: &str) -> Result<(), BusError> {
        self.0.check_open()?;
        let letter = DeadLetter::of(d, kind, reason, self.0.clock.as_ref());
        let payload = serde_json::to_vec(&letter).map_err(|e| failed("a dead letter", e))?;
        // One dead letter per pair, even when a node dies between this and its ack and the
        // pair is given up on again elsewhere.
        let mut headers = HeaderMap::new();
        let id = format!("{}/{}", d.event.id, d.function);
        headers.insert("Nats-Msg-Id", id.as_str());
        self.0
            .js
            .publish_with_headers(
                format!("{}.dead", self.0.settings.stream),
                headers,
                payload.into(),
            )
            .await
            .map_err(|e| failed("recording a dead letter", e))?
            .await
            .map_err(|e| failed("recording a dead letter (not confirmed)", e))?;
        self.0.settle(d, AckKind::Ack).await
    }

    async fn dead_letters(
        &self,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let (name, mut dead) = self.0.dead_stream().await?;
        let state = dead
            .info()
            .await
            .map_err(|e| failed(&name, e))?
            .state
            .clone();
        let mut out = Vec::new();
        let mut seq = before.map_or(state.last_sequence, |b| b.saturating_sub(1));
        while out.len() < limit && seq >= state.first_sequence.max(1) {
            if let Ok(m) = dead.get_raw_message(seq).await
                && let Ok(letter) = serde_json::from_slice::<DeadLetter>(&m.payload)
            {
                out.push(DeadLetter { id: seq, ..letter });
            }
            seq -= 1;
        }
        Ok(out)
    }

    async fn dead_letter_by_id(&self, id: u64) -> Result<Option<DeadLetter>, BusError> {
        let (name, dead) = self.0.dead_stream().await?;
        use async_nats::jetstream::stream::RawMessageErrorKind;
        if id == 0 {
            return Ok(None);
        }
        match dead.get_raw_message(id).await {
            Ok(m) => serde_json::from_slice::<DeadLetter>(&m.payload)
                .map(|letter| Some(DeadLetter { id, ..letter }))
                .map_err(|e| failed("a dead letter", e)),
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(failed(&name, e)),
        }
    }

    async fn remove_dead_letters(&self, ids: &[u64]) -> Result<u64, BusError> {
        let (_, dead) = self.0.dead_stream().await?;
        use async_nats::jetstream::stream::RawMessageErrorKind;
        let mut removed = 0;
        for id in ids.iter().copied().filter(|id| *id > 0) {
            // Looked up first: deleting one that is not there fails with codes that also mean
            // a real failure (10057 past the end of the stream, on 2.9).
            match dead.get_raw_message(id).await {
                Ok(_) => {}
                Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => continue,
                Err(e) => return Err(failed("looking up a dead letter", e)),
            }
            match dead.delete_message(id).await {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(e) => return Err(failed("removing a dead letter", e)),
            }
        }
        Ok(removed)
    }

    async fn depth(&self) -> Result<u64, BusError> {
        self.0.check_open()?;
        let mut s = self
            .0
            .js
            .get_stream(&self.0.settings.stream)
            .await
            .map_err(|e| failed("the stream", e))?;
        Ok(s.info()
            .await
            .map_err(|e| failed("the stream", e))?
            .state
            .messages)
    }

    /// Both connections: the stream answers through the publishing one, and the consumers'
    /// one is connected (it can be down alone, reconnecting, while publishes still go through).
    async fn ready(&self) -> Result<(), BusError> {
        use async_nats::connection::State;
        if self.0.pulls.client().connection_state() != State::Connected {
            return Err(BusError::Store(format!(
                "the consumers' connection to {} is down (reconnecting)",
                self.0.settings.url
            )));
        }
        self.depth().await.map(drop)
    }

    async fn pending(&self, function: &str) -> Result<u64, BusError> {
        self.0.check_open()?;
        let mut c = self.0.consumer(function).await?;
        let info = c.info().await.map_err(|e| failed("the consumer", e))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }

    async fn close(&self) {
        self.0.closed.send_replace(true);
    }
}
