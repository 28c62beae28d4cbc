//! The bucket poller, for stores that send no notifications: `- poll: { bucket, prefix, suffix,
//! interval }`. Every `interval` it lists the bucket page by page and emits `ObjectCreated` for
//! each object that is new or a new version (etag or last-modified changed) since the last
//! listing; on the first start, every object counts as new. Its state (`poll_state.rs`) is kept
//! in the data directory and written after each page's events are on the bus, so a restart
//! neither repeats nor misses a version. A failing round is logged, counted and retried with
//! backoff; it never stops the other triggers.

use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use tokio::sync::watch;

use super::poll_state::{PollState, diff};
use crate::config::PollTrigger;
use crate::events::{Event, ObjectRef, stable_id};
use crate::metric_names as m;
use crate::store::{ObjectInfo, ObjectStore, PageRequest};

/// Where a poller's events go: the bus, for one function.
#[async_trait::async_trait]
pub trait Sink: Send + Sync {
    /// Durable when this returns.
    async fn emit(&self, events: Vec<Event>) -> Result<(), String>;
}

/// One poller: a function's `poll` trigger.
pub struct Poller {
    pub function: String,
    pub trigger: PollTrigger,
    pub store: Arc<dyn ObjectStore>,
    pub state: PollState,
    pub sink: Arc<dyn Sink>,
    /// Objects per listing page (S3's maximum, 1000, outside tests).
    pub page: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("listing s3://{bucket}/{prefix}: {source}")]
    List {
        bucket: String,
        prefix: String,
        source: crate::store::StoreError,
    },
    #[error(transparent)]
    State(#[from] super::poll_state::StateError),
    #[error("recording events: {0}")]
    Emit(String),
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub listed: u64,
    pub emitted: u64,
}

impl Poller {
    fn id(&self) -> String {
        let t = &self.trigger;
        format!(
            "{}|{}|{}",
            self.function,
            t.bucket,
            t.prefix.as_deref().unwrap_or("")
        )
    }

    /// List the whole bucket once, emitting what changed. Stops between pages when `stop`
    /// turns true, with every emitted page recorded.
    pub async fn round(&self, stop: &watch::Receiver<bool>) -> Result<Round, PollError> {
        let (id, prefix) = (self.id(), self.trigger.prefix.clone().unwrap_or_default());
        let matcher = self.trigger.as_s3();
        let mut after: Option<String> = None;
        let mut done = Round::default();
        loop {
            let request = PageRequest {
                prefix: prefix.clone(),
                start_after: after.clone(),
                max: self.page,
            };
            let page = self
                .store
                .list(&self.trigger.bucket, &request)
                .await
                .map_err(|source| PollError::List {
                    bucket: self.trigger.bucket.clone(),
                    prefix: prefix.clone(),
                    source,
                })?;
            done.listed += page.objects.len() as u64;
            counter!(m::POLL_LISTED, "function" => self.function.clone())
                .increment(page.objects.len() as u64);
            let upto = page.next.clone();
            let wanted: Vec<ObjectInfo> = page
                .objects
                .into_iter()
                .filter(|o| crate::router::matches(&matcher, &self.event(o)))
                .collect();
            let (state, pid, pre, from, to) = (
                self.state.clone(),
                id.clone(),
                prefix.clone(),
                after.clone(),
                upto.clone(),
            );
            let known =
                blocking(move || state.known(&pid, &pre, from.as_deref(), to.as_deref())).await??;
            let d = diff(&wanted, &known);
            if !d.changed.is_empty() {
                let events = d.changed.iter().map(|o| self.event(o)).collect();
                self.sink.emit(events).await.map_err(PollError::Emit)?;
                done.emitted += d.changed.len() as u64;
                counter!(m::POLL_EMITTED, "function" => self.function.clone())
                    .increment(d.changed.len() as u64);
            }
            if !d.changed.is_empty() || !d.gone.is_empty() {
                let changed: Vec<ObjectInfo> = d.changed.into_iter().cloned().collect();
                let (state, pid, gone) = (self.state.clone(), id.clone(), d.gone);
                blocking(move || {
                    let refs: Vec<&ObjectInfo> = changed.iter().collect();
                    state.record(&pid, &refs, &gone)
                })
                .await??;
            }
            match upto {
                Some(next) if !*stop.borrow() => after = Some(next),
                _ => return Ok(done),
            }
        }
    }

    /// The event for one version of an object; its id is stable for that version, so the same
    /// version gives the same id however often it is seen.
    fn event(&self, o: &ObjectInfo) -> Event {
        let modified = o.modified_ms.to_string();
        Event {
            id: stable_id(&[
                "weir:poll",
                &self.function,
                &self.trigger.bucket,
                &o.key,
                &o.etag,
                &modified,
            ]),
            source: "weir:poll".into(),
            time: crate::events::now(),
            name: "s3:ObjectCreated:Put".into(),
            object: ObjectRef::listed(&self.trigger.bucket, o),
            ..Default::default()
        }
    }

    /// Poll every `interval` until `stop`; a failed round backs off (1 s, doubling, at most the
    /// interval) and tries again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let interval = self.trigger.interval;
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.round(&stop).await {
                Ok(r) => {
                    backoff = Duration::from_secs(1);
                    if r.emitted > 0 {
                        tracing::info!(function = %self.function, bucket = %self.trigger.bucket, listed = r.listed, emitted = r.emitted, "polled");
                    }
                    interval
                }
                Err(e) => {
                    counter!(m::POLL_ERRORS, "function" => self.function.clone()).increment(1);
                    tracing::warn!(function = %self.function, error = %e, retry_in = ?backoff, "polling failed");
                    let wait = backoff.min(interval);
                    backoff = (backoff * 2).min(interval);
                    wait
                }
            };
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PollError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PollError::Emit(format!("a poller task failed: {e}")))
}
