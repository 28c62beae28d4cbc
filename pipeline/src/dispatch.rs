//! Storage events to invocations: one consumer per function pulls its (event, function) pairs from
//! the bus only when its pool has room (backpressure, not loss), reads the object, runs the
//! function, writes the outputs under their template keys, and only then acknowledges. A
//! permanent failure goes to the dead letters with its reason; a transient one is retried with
//! exponential backoff up to `retries.max`.

use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, histogram};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_functions::{ErrorKind, FnError, Input, ObjectEvent, Origin, ScheduledEvent, Source};
use weir_workers::{Admission, Pool};

use crate::bus::{
    Bus, Delivery, EmbeddedBus, JetStreamBus, Lane, SystemClock, async_lane, job_lane,
    lane_function,
};
use crate::config::{BusSection, FileConfig, Retries};
use crate::invocations::{Keep, Outcome as Ended, Results};
use crate::jobs::{Gate, Jobs, Outcome, Target};
use crate::metric_names as m;
use crate::sinks::{run_and_write, write_outputs};
use crate::store::{Fetched, KeyTemplate, ObjectStore, StoreError, StoreErrorKind};
use crate::triggers::Ingress;

/// Everything one function's consumer needs.
pub struct Consumer {
    pub function: String,
    /// The bus queue it takes from: the function's live events, or its reprocess jobs' pairs
    /// (`bus::job_lane`), which take a pool place only while a worker would sit idle.
    pub queue: String,
    /// The jobs told what became of their pairs.
    pub jobs: Arc<Jobs>,
    /// Where asynchronous invokes' results go.
    pub results: Results,
    pub pool: Pool,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn ObjectStore>,
    /// Where artifacts go: the output bucket and key template. `None` for users' code that
    /// writes its own objects (what it returns is then dropped).
    pub output: Option<(String, KeyTemplate)>,
    /// `FunctionSpec::output_hash`, written on every output.
    pub spec_hash: String,
    pub retries: Retries,
    /// The function reads inputs as streams (`Limits::streams_input`).
    pub streams_input: bool,
    /// The function runs users' code: it is handed the event, and reads the object itself.
    pub external: bool,
    /// Turns true at shutdown: take nothing more, finish what was taken.
    pub stop: watch::Receiver<bool>,
}

/// What `start` started: the ingress for triggers, the consumers and the bus they share.
pub struct Dispatch {
    pub events: Arc<Ingress>,
    /// Reprocess jobs, fed through the same bus and consumers.
    pub jobs: Arc<Jobs>,
    /// Asynchronous invokes' results.
    pub results: Results,
    pub bus: Arc<dyn Bus>,
    /// End once `stop` turns true and their work in flight is recorded on the bus.
    pub consumers: Vec<JoinHandle<()>>,
    /// The NATS connection when the bus is JetStream (the subject trigger uses it too).
    pub nats: Option<async_nats::Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the object store: {0}")]
    Store(#[from] StoreError),
    #[error("the event bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("functions[{0}].output.key: {1}")]
    Template(String, crate::store::TemplateError),
    #[error("reprocess jobs: {0}")]
    Jobs(#[from] crate::jobs::JobError),
    #[error("asynchronous invokes: {0}")]
    Results(#[from] crate::invocations::ResultsError),
    #[error("asynchronous invokes: {0}")]
    Carried(String),
}

/// Open the bus under `data_dir`, and start consumers: every function's asynchronous invokes'
/// lane, the jobs' lane of each with an output, the live queue of each with storage triggers.
/// The buckets named by triggers and outputs exist when this returns (created where missing):
/// a store that does not answer is a start-up error that names it.
pub async fn start(
    data_dir: &std::path::Path,
    store: &Arc<dyn ObjectStore>,
    functions: &[crate::config::LoadedFunction],
    pools: &std::collections::HashMap<String, Pool>,
    file: &FileConfig,
    stop: &watch::Receiver<bool>,
) -> Result<Dispatch, StartError> {
    let (bus, nats) = open_bus(&file.bus, data_dir, functions).await?;
    let i = &file.invocations;
    if let Some(client) = &nats {
        // An asynchronous invoke's body rides base64 in one message, with the request beside.
        let carried = i.max_body.div_ceil(3) * 4 + (64 << 10);
        let most = client.server_info().max_payload as u64;
        if carried > most {
            return Err(StartError::Carried(format!(
                "invocations.max_body of {} bytes makes messages of up to {carried} bytes; the NATS server takes {most} (its max_payload): lower max_body or raise max_payload",
                i.max_body
            )));
        }
    }
    let keep = Keep {
        keep: i.keep,
        max_results: i.max_results,
        max_bytes: i.max_bytes,
    };
    let results = Results::open(
        &data_dir.join("invocations.redb"),
        keep,
        Arc::new(SystemClock),
    )?;
    let mut targets = std::collections::HashMap::new();
    for f in functions {
        if let Some(out) = &f.spec.output {
            let template = KeyTemplate::parse(&out.key, f.kind.template_vars)
                .map_err(|e| StartError::Template(f.spec.name.clone(), e))?;
            let target = Target {
                bucket: out.bucket.clone(),
                template,
                spec_hash: f.spec.output_hash(),
            };
            targets.insert(f.spec.name.clone(), target);
        }
    }
    let jobs = Jobs::open(data_dir, bus.clone(), store.clone(), targets, stop.clone())?;
    let (mut routes, mut consumers) = (Vec::new(), Vec::new());
    for f in functions {
        // Notifications (webhook, built-in endpoint) are routed by these; pollers feed their
        // own function directly.
        let notified: Vec<_> = f
            .spec
            .triggers
            .iter()
            .filter_map(|t| match t {
                crate::config::Trigger::S3(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let storage: Vec<_> = f.spec.triggers.iter().filter_map(|t| t.storage()).collect();
        let feeds_bus = f.spec.triggers.iter().any(|t| t.feeds_bus());
        for t in &storage {
            store.ensure_bucket(&t.bucket).await?;
        }
        let Some(pool) = pools.get(&f.spec.name) else {
            continue;
        };
        let consumer = |queue: String, output: Option<(String, KeyTemplate)>| Consumer {
            function: f.spec.name.clone(),
            queue,
            jobs: jobs.clone(),
            results: results.clone(),
            pool: pool.clone(),
            bus: bus.clone(),
            store: store.clone(),
            output,
            spec_hash: f.spec.output_hash(),
            retries: f.spec.resources.retries.clone(),
            streams_input: f.function.limits().streams_input,
            external: f.function.external(),
            stop: stop.clone(),
        };
        // Any function can be invoked asynchronously; its results go to `results`.
        let lane = consumer(async_lane(&f.spec.name), None);
        consumers.push(tokio::spawn(run(Arc::new(lane))));
        if f.spec.output.is_none() && !f.kind.output_optional {
            continue;
        }
        if let Some(out) = &f.spec.output {
            store.ensure_bucket(&out.bucket).await?;
        }
        let output = match &f.spec.output {
            Some(out) => Some((
                out.bucket.clone(),
                KeyTemplate::parse(&out.key, f.kind.template_vars)
                    .map_err(|e| StartError::Template(f.spec.name.clone(), e))?,
            )),
            None => None,
        };
        // Any function with an output can be reprocessed, triggers or not.
        if output.is_some() {
            let lane = consumer(job_lane(&f.spec.name), output.clone());
            consumers.push(tokio::spawn(run(Arc::new(lane))));
        }
        if feeds_bus {
            let live = consumer(f.spec.name.clone(), output.clone());
            consumers.push(tokio::spawn(run(Arc::new(live))));
            routes.push((f.spec.name.clone(), notified));
        }
    }
    jobs.resume().await?;
    let depth_bus = bus.clone();
    tokio::spawn(async move {
        loop {
            match depth_bus.depth().await {
                Ok(n) => metrics::gauge!(m::BUS_DEPTH).set(n as f64),
                Err(crate::bus::BusError::Closed) => return,
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let events = Arc::new(Ingress {
        bus: bus.clone(),
        routes,
    });
    Ok(Dispatch {
        events,
        jobs,
        results,
        bus,
        consumers,
        nats,
    })
}

/// The bus the configuration names. JetStream's consumers are made (or checked) now, so a
/// mismatch stops the start.
async fn open_bus(
    section: &BusSection,
    data_dir: &std::path::Path,
    functions: &[crate::config::LoadedFunction],
) -> Result<(Arc<dyn Bus>, Option<async_nats::Client>), StartError> {
    match section {
        BusSection::Embedded => {
            let path = data_dir.join("bus.redb");
            Ok((
                Arc::new(EmbeddedBus::open(&path, Arc::new(SystemClock))?),
                None,
            ))
        }
        BusSection::Nats(n) => {
            let bus = JetStreamBus::open(n.settings(), Arc::new(SystemClock)).await?;
            // Each function's live queue where triggers feed it, its jobs' lane where it has
            // an output, its asynchronous invokes' lane.
            let mut consumers = Vec::new();
            for f in functions {
                consumers.push(async_lane(&f.spec.name));
                if f.spec.triggers.iter().any(|t| t.feeds_bus()) {
                    consumers.push(f.spec.name.clone());
                }
                if f.spec.output.is_some() {
                    consumers.push(job_lane(&f.spec.name));
                }
            }
            bus.prepare(&consumers).await?;
            tracing::info!(url = %n.url, stream = %n.stream, "the bus is NATS JetStream");
            let client = bus.client();
            Ok((Arc::new(bus), Some(client)))
        }
    }
}

async fn run(c: Arc<Consumer>) {
    // Take from the bus only what can start soon: what the workers run at once, and as much
    // again waiting its turn, so a worker that finishes finds its next batch here rather than
    // a round trip away (a slot is held until the outcome is on the bus). The rest of a
    // backlog waits on the bus, where waiting costs no lease, no attempt and no timeout.
    let cfg = c.pool.config();
    // A job's lane holds only what the workers run at once: its pairs take a place only
    // while a worker is idle, and the rest wait on the bus.
    let ahead = if lane_function(&c.queue).1 == Lane::Jobs {
        1
    } else {
        2
    };
    let room = u32::try_from(ahead * cfg.workers * cfg.max_batch).unwrap_or(u32::MAX);
    let soon = Arc::new(tokio::sync::Semaphore::new(room as usize));
    let mut stop = c.stop.clone();
    // Set by a batch whose admission found the pool closed (shutdown): pull nothing more.
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    while !closed.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(slots) = free_slots(&soon, room, cfg.max_delay).await else {
            return;
        };
        // A job's lane pulls only once a worker is idle: on a shared bus, a busy node leaves
        // the job's pairs to idle ones instead of holding them.
        if lane_function(&c.queue).1 == Lane::Jobs {
            tokio::select! {
                spare = c.pool.until_spare() => if spare.is_err() { break },
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let ds = tokio::select! {
            d = c.bus.next_batch(&c.queue, slots.len()) => d,
            _ = stop.wait_for(|s| *s) => break,
        };
        match ds {
            // Opened and admitted apart, so the next pull goes out while this batch's objects
            // are opened. Slots beyond what came back are released as `slots` drops.
            Ok(ds) => drop(tokio::spawn(start_batch(
                c.clone(),
                ds,
                slots,
                closed.clone(),
            ))),
            Err(crate::bus::BusError::Closed) => break,
            Err(e) => {
                // The store behind the bus failed: say so, and look again in a moment.
                tracing::error!(function = %c.function, error = %e, "cannot read the bus");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    // Shutdown: wait until every pair in flight has its outcome on the bus.
    let _ = soon.acquire_many(room).await;
}

/// Open a pulled batch's objects, admit each pair to the pool in order and run it; once the
/// pool refuses (it closed), the rest go back to the bus unspent and `closed` is set.
async fn start_batch(
    c: Arc<Consumer>,
    ds: Vec<Delivery>,
    slots: Vec<tokio::sync::OwnedSemaphorePermit>,
    closed: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut opened = open_ahead(&c, &ds).await.into_iter();
    let mut ds = ds.into_iter();
    for (d, slot) in ds.by_ref().zip(slots) {
        let opened = opened.next().flatten();
        // A job's pair whose object is finished, or whose job was cancelled, is let go
        // without a pool place.
        if c.jobs.gate(&d.event).await == Gate::Drop {
            match c.bus.ack(&d).await {
                Ok(()) => c.jobs.settled(&d.event),
                Err(e) => {
                    tracing::error!(function = %c.function, key = %d.event.object.key, error = %e, "cannot record the outcome on the bus")
                }
            }
            continue;
        }
        // Waits while the pool is full (a job's pair: while no worker is idle); fails once
        // the pool closes (shutdown).
        let admitted = if lane_function(&c.queue).1 == Lane::Jobs {
            c.pool.admit_spare().await
        } else {
            c.pool.admit().await
        };
        let Ok(admission) = admitted else {
            closed.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = c.bus.postpone(&d, Duration::ZERO).await;
            for rest in ds {
                let _ = c.bus.postpone(&rest, Duration::ZERO).await;
            }
            return;
        };
        tokio::spawn(process(c.clone(), admission, d, opened, slot));
    }
}

/// Slots for the next pull: one to wait for, and as many more as are free. While more than
/// half the room is busy, it waits (at most the batch's `max_delay`, the delay the function
/// already accepts for company) until half is free, so a backlog is pulled half a room per
/// round trip rather than one pull per finished pair — on a remote bus each pull costs the
/// server far more than a pair — and the workers keep the other half meanwhile.
async fn free_slots(
    soon: &Arc<tokio::sync::Semaphore>,
    room: u32,
    wait: Duration,
) -> Option<Vec<tokio::sync::OwnedSemaphorePermit>> {
    let first = soon.clone().acquire_owned().await.ok()?;
    let mut slots = vec![first];
    let half = (room / 2).max(1);
    if (soon.available_permits() as u32) < half - 1 {
        let waited = tokio::time::timeout(wait, soon.clone().acquire_many_owned(half - 1)).await;
        if let Ok(Ok(mut many)) = waited {
            while let Some(one) = many.split(1) {
                slots.push(one);
            }
        }
    }
    while let Ok(more) = soon.clone().try_acquire_owned() {
        slots.push(more);
    }
    Some(slots)
}

/// What a store that opens in one go (`ObjectStore::open_many`) opened for a pulled batch of a
/// streaming function, one per delivery; `None` for each where the store opens one at a time.
type Opened = Option<Result<Fetched<Arc<dyn Source>>, StoreError>>;

async fn open_ahead(c: &Consumer, ds: &[Delivery]) -> Vec<Opened> {
    if !c.streams_input {
        return Vec::new();
    }
    // Events that carry their input (cron, asynchronous invokes) name no object to open.
    let stored: Vec<usize> = (0..ds.len())
        .filter(|&i| ds[i].event.payload.is_none() && ds[i].event.request.is_none())
        .collect();
    let objects: Vec<(&str, &str)> = stored
        .iter()
        .map(|&i| {
            (
                ds[i].event.object.bucket.as_str(),
                ds[i].event.object.key.as_str(),
            )
        })
        .collect();
    if objects.is_empty() {
        return Vec::new();
    }
    let limit = c.pool.config().max_input;
    let Some(all) = c.store.open_many(&objects, limit).await else {
        return Vec::new();
    };
    let mut opened: Vec<Opened> = (0..ds.len()).map(|_| None).collect();
    for (i, f) in stored.into_iter().zip(all) {
        opened[i] = Some(f);
    }
    opened
}

async fn process(
    c: Arc<Consumer>,
    admission: Admission,
    d: Delivery,
    opened: Opened,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let label = c.function.clone();
    let result = attempt(&c, admission, &d, opened).await;
    let recorded = match verdict(&result, d.attempts, &c.retries) {
        Verdict::Ack => {
            counter!(m::EVENTS_DONE, "function" => label.clone()).increment(1);
            // One line per event run to completion: the trail that shows whether an event ran
            // twice (a node killed between its outputs and its ack).
            tracing::debug!(function = %c.function, event = %d.event.id, key = %d.event.object.key, attempts = d.attempts, "done");
            // A job's mark before the ack: a pair delivered again finds it, and is not rerun.
            c.jobs.finished(&d.event, Outcome::Processed).await;
            if let Ok(t) = humantime::parse_rfc3339_weak(d.event.time.trim_end_matches('Z'))
                && let Ok(age) = std::time::SystemTime::now().duration_since(t)
            {
                histogram!(m::EVENT_LATENCY, "function" => label).record(age.as_secs_f64());
            }
            c.bus.ack(&d).await
        }
        Verdict::Postpone(after) => {
            let e = result.as_ref().err();
            let kind = e.map(|e| e.kind().label()).unwrap_or_default();
            counter!(m::EVENTS_RETRIED, "function" => label, "kind" => kind).increment(1);
            tracing::info!(function = %c.function, key = %d.event.object.key, error = ?e, "postponed");
            c.bus.postpone(&d, after).await
        }
        Verdict::Retry(backoff) => {
            let e = result.as_ref().err();
            let kind = e.map(|e| e.kind().label()).unwrap_or_default();
            counter!(m::EVENTS_RETRIED, "function" => label, "kind" => kind).increment(1);
            tracing::warn!(function = %c.function, key = %d.event.object.key, error = ?e, ?backoff, "retrying");
            c.bus.retry(&d, backoff).await
        }
        Verdict::Dead => {
            let (kind, reason) = match &result {
                Err(e) => (e.kind().label(), e.reason()),
                Ok(()) => ("", ""),
            };
            counter!(m::EVENTS_DEAD_LETTERED, "function" => label, "kind" => kind).increment(1);
            c.jobs
                .finished(&d.event, Outcome::Failed(format!("{kind}: {reason}")))
                .await;
            if let Some(request) = &d.event.request {
                let failed = Ended::Failed {
                    kind: kind.to_string(),
                    reason: reason.to_string(),
                };
                if let Err(e) = c
                    .results
                    .finish(&request.invocation, &c.function, failed)
                    .await
                {
                    tracing::error!(function = %c.function, invocation = %request.invocation, error = %e, "cannot record the invocation's failure");
                }
            }
            tracing::warn!(function = %c.function, key = %d.event.object.key, kind, reason, "dead-lettered");
            c.bus.dead_letter(&d, kind, reason).await
        }
    };
    match recorded {
        Ok(()) => c.jobs.settled(&d.event),
        // Not acknowledged: the pair stays on the bus and is delivered again after a restart.
        Err(e) => {
            tracing::error!(function = %c.function, key = %d.event.object.key, error = %e, "cannot record the outcome on the bus")
        }
    }
}

/// What becomes of a pair after an attempt.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Ack,
    /// Back on the bus without spending an attempt (there was no room to run).
    Postpone(Duration),
    /// Back on the bus after this backoff, the attempt spent.
    Retry(Duration),
    Dead,
}

/// Overload waits without spending an attempt; retryable failures back off exponentially from
/// `retries.backoff` while attempts remain; the rest are dead letters.
fn verdict(result: &Result<(), FnError>, attempts: u32, retries: &Retries) -> Verdict {
    match result {
        Ok(()) => Verdict::Ack,
        Err(e) if e.kind() == ErrorKind::Overloaded => Verdict::Postpone(retries.backoff),
        Err(e) if e.kind().retryable() && attempts < retries.max => {
            Verdict::Retry(retries.backoff.saturating_mul(1 << attempts.min(16)))
        }
        Err(_) => Verdict::Dead,
    }
}

async fn attempt(
    c: &Consumer,
    admission: Admission,
    d: &Delivery,
    opened: Opened,
) -> Result<(), FnError> {
    let object = &d.event.object;
    // An asynchronous invoke: its result is kept for its caller, before the ack.
    if let Some(request) = &d.event.request {
        let ended =
            crate::invocations::run::run(admission, request, &c.function, c.external).await?;
        return c
            .results
            .finish(&request.invocation, &c.function, ended)
            .await
            .map_err(|e| FnError::transient(e.to_string()));
    }
    // An event that carries its input (a cron firing) names no object to read.
    if let Some(payload) = &d.event.payload {
        let output = admission.run(carried(&d.event, payload)).await?;
        return write_outputs(c, object, "", output).await;
    }
    let limit = c.pool.config().max_input;
    // Users' code gets the event and reads the object itself; a function that streams
    // (video) opens the object; the others get its bytes.
    if c.external {
        let output = admission.run(Input::event(origin(&d.event))).await?;
        let etag = object.etag.clone().unwrap_or_default();
        return write_outputs(c, object, &etag, output).await;
    }
    let (input, version) = if c.streams_input {
        let f = match opened {
            Some(f) => f,
            None => c.store.open(&object.bucket, &object.key, limit).await,
        };
        let f = f.map_err(read_error)?;
        (Input::streamed(f.body), f.info)
    } else {
        let f = c.store.get(&object.bucket, &object.key, limit).await;
        let f = f.map_err(read_error)?;
        (Input::new(f.body), f.info)
    };
    // The version actually read, which may be newer than the one the event named.
    run_and_write(c, admission, input, object, &version.etag).await
}

/// The input a cron firing carries: a string payload as its text, anything else as JSON; users'
/// code is handed the firing itself, as EventBridge hands it to Lambda.
fn carried(e: &crate::events::Event, payload: &serde_json::Value) -> Input {
    let (bytes, content_type) = match payload {
        serde_json::Value::String(text) => (text.clone().into_bytes(), "text/plain"),
        v => (v.to_string().into_bytes(), "application/json"),
    };
    let scheduled = ScheduledEvent {
        id: e.id.clone(),
        time: e.time.clone(),
        // The key is `<rule>/<slot>` (`triggers::cron`).
        rule: e
            .object
            .key
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        detail: payload.clone(),
    };
    let mut input = Input::new(bytes);
    input.content_type = Some(content_type.into());
    input.origin = Some(Arc::new(Origin::Scheduled(scheduled)));
    input
}

/// The event as users' code is handed it.
fn origin(e: &crate::events::Event) -> Origin {
    Origin::Object(ObjectEvent {
        id: e.id.clone(),
        source: e.source.clone(),
        time: e.time.clone(),
        name: e.name.clone(),
        bucket: e.object.bucket.clone(),
        key: e.object.key.clone(),
        size: e.object.size,
        etag: e.object.etag.clone(),
        version: e.object.version.clone(),
    })
}

/// A failed read: the same failure every time dead-letters, one that may pass is retried.
fn read_error(e: StoreError) -> FnError {
    match e.kind() {
        StoreErrorKind::NotFound | StoreErrorKind::BadRequest | StoreErrorKind::Denied => {
            FnError::bad_input(e.to_string())
        }
        StoreErrorKind::TooLarge => FnError::new(ErrorKind::TooLarge, e.to_string()),
        StoreErrorKind::Transient => FnError::transient(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_busy_room_waits_for_half_of_it_but_no_longer_than_max_delay() {
        let soon = Arc::new(tokio::sync::Semaphore::new(8));
        let wait = Duration::from_millis(5);
        // Mostly free: everything free now, at once.
        let all = free_slots(&soon, 8, wait).await.unwrap();
        assert_eq!(all.len(), 8);
        drop(all);
        // Seven busy: one free, and it waits for half the room (4) to free.
        let mut busy = soon.clone().acquire_many_owned(7).await.unwrap();
        let freeing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            let three = busy.split(3).unwrap();
            drop(three);
            busy
        });
        let started = tokio::time::Instant::now();
        let half = free_slots(&soon, 8, wait).await.unwrap();
        assert_eq!(half.len(), 4, "the free one and the three freed");
        assert_eq!(started.elapsed(), Duration::from_millis(2));
        // All busy but one, and nothing frees: it goes with what it has after max_delay.
        let _busy = freeing.await.unwrap();
        drop(half);
        let _three = soon.clone().acquire_many_owned(3).await.unwrap();
        let started = tokio::time::Instant::now();
        let one = free_slots(&soon, 8, wait).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(started.elapsed(), wait);
    }

    #[test]
    fn verdicts_follow_the_error_kind_and_the_attempts_left() {
        let r = Retries {
            max: 2,
            backoff: Duration::from_millis(100),
        };
        let err = |k| Err(FnError::new(k, "x"));
        assert_eq!(verdict(&Ok(()), 0, &r), Verdict::Ack);
        assert_eq!(verdict(&err(ErrorKind::BadInput), 0, &r), Verdict::Dead);
        assert_eq!(verdict(&err(ErrorKind::TooLarge), 0, &r), Verdict::Dead);
        let ms = Duration::from_millis;
        assert_eq!(
            verdict(&err(ErrorKind::Transient), 0, &r),
            Verdict::Retry(ms(100))
        );
        assert_eq!(
            verdict(&err(ErrorKind::Timeout), 1, &r),
            Verdict::Retry(ms(200))
        );
        assert_eq!(verdict(&err(ErrorKind::Transient), 2, &r), Verdict::Dead);
        assert_eq!(
            verdict(&err(ErrorKind::Overloaded), 9, &r),
            Verdict::Postpone(ms(100))
        );
    }
}
