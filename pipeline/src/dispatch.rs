//! Storage events to invocations: one consumer per function pulls its (event, function) pairs from
//! the bus only when its pool has room (backpressure, not loss), reads the object, runs the
//! function, writes the outputs under their template keys, and only then acknowledges. A
//! permanent failure goes to the dead letters with its reason; a transient one is retried with
//! exponential backoff up to `retries.max`.

use std::sync::Arc;
use std::time::Duration;

use crate::metric_names as m;
use metrics::{counter, histogram};
use tokio::sync::Notify;
use weir_functions::{ErrorKind, FnError, Input};
use weir_workers::{Admission, Pool};

use crate::bus::{Bus, Delivery};
use crate::config::Retries;
use crate::store::provenance::Provenance;
use crate::store::{KeyTemplate, ObjectStore, PutOptions, StoreError, StoreErrorKind};

/// Everything one function's consumer needs.
pub struct Consumer {
    pub function: String,
    pub pool: Pool,
    pub bus: Bus,
    pub store: Arc<dyn ObjectStore>,
    pub output_bucket: String,
    pub template: KeyTemplate,
    /// `FunctionSpec::output_hash`, written on every output.
    pub spec_hash: String,
    pub retries: Retries,
    /// The function reads inputs as streams (`Limits::streams_input`).
    pub streams_input: bool,
    /// Rung by the webhook when it records pairs for this function.
    pub wake: Arc<Notify>,
}

/// How long an idle consumer waits before looking again (retries come due without a ring).
const IDLE_POLL: Duration = Duration::from_millis(500);

pub fn spawn(c: Consumer) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(Arc::new(c)))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the object store: {0}")]
    Store(#[from] StoreError),
    #[error("the event bus: {0}")]
    Bus(#[from] crate::bus::BusError),
    #[error("functions[{0}].output.key: {1}")]
    Template(String, crate::store::TemplateError),
}

/// Open the bus under `data_dir`, and start a consumer for every function with S3 triggers.
/// The buckets named by triggers and outputs exist when this returns (created where missing):
/// a store that does not answer is a start-up error that names it.
pub async fn start(
    data_dir: &std::path::Path,
    store: &Arc<dyn ObjectStore>,
    functions: &[crate::config::LoadedFunction],
    pools: &std::collections::HashMap<String, Pool>,
) -> Result<crate::http::events::EventsState, StartError> {
    let bus = Bus::open(&data_dir.join("bus.redb"))?;
    let (mut routes, mut wakes) = (Vec::new(), std::collections::HashMap::new());
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
        for t in &storage {
            store.ensure_bucket(&t.bucket).await?;
        }
        let (Some(out), Some(pool)) = (&f.spec.output, pools.get(&f.spec.name)) else {
            continue;
        };
        store.ensure_bucket(&out.bucket).await?;
        if storage.is_empty() {
            continue;
        }
        let template = KeyTemplate::parse(&out.key, f.spec.kind.template_vars())
            .map_err(|e| StartError::Template(f.spec.name.clone(), e))?;
        let wake = Arc::new(Notify::new());
        spawn(Consumer {
            function: f.spec.name.clone(),
            pool: pool.clone(),
            bus: bus.clone(),
            store: store.clone(),
            output_bucket: out.bucket.clone(),
            template,
            spec_hash: f.spec.output_hash(),
            retries: f.spec.resources.retries.clone(),
            streams_input: f.function.limits().streams_input,
            wake: wake.clone(),
        });
        wakes.insert(f.spec.name.clone(), wake);
        routes.push((f.spec.name.clone(), notified));
    }
    let depth_bus = bus.clone();
    tokio::spawn(async move {
        loop {
            let b = depth_bus.clone();
            if let Ok(Ok(n)) = tokio::task::spawn_blocking(move || b.depth()).await {
                metrics::gauge!(m::BUS_DEPTH).set(n as f64);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(crate::http::events::EventsState { bus, routes, wakes })
}

async fn run(c: Arc<Consumer>) {
    // Take from the bus only what can start soon: as many as the workers run at once. The rest
    // of a backlog waits on the bus, where waiting costs no lease, no attempt and no timeout.
    let cfg = c.pool.config();
    let soon = Arc::new(tokio::sync::Semaphore::new(cfg.workers * cfg.max_batch));
    loop {
        let Ok(slot) = soon.clone().acquire_owned().await else {
            return;
        };
        // Waits while the pool is full; ends when the pool closes (shutdown).
        let Ok(admission) = c.pool.admit().await else {
            return;
        };
        let (bus, f) = (c.bus.clone(), c.function.clone());
        match tokio::task::spawn_blocking(move || bus.claim(&f, 1)).await {
            Ok(Ok(mut claimed)) if !claimed.is_empty() => {
                tokio::spawn(process(c.clone(), admission, claimed.remove(0), slot));
            }
            Ok(Ok(_)) => {
                drop((admission, slot));
                let _ = tokio::time::timeout(IDLE_POLL, c.wake.notified()).await;
            }
            Ok(Err(e)) => {
                tracing::error!(function = %c.function, error = %e, "cannot read the bus");
                drop(admission);
                tokio::time::sleep(IDLE_POLL).await;
            }
            Err(_) => return,
        }
    }
}

async fn process(
    c: Arc<Consumer>,
    admission: Admission,
    d: Delivery,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let label = c.function.clone();
    let result = attempt(&c, admission, &d).await;
    let recorded = match &result {
        Ok(()) => {
            counter!(m::EVENTS_DONE, "function" => label.clone()).increment(1);
            if let Ok(t) = humantime::parse_rfc3339_weak(d.event.time.trim_end_matches('Z'))
                && let Ok(age) = std::time::SystemTime::now().duration_since(t)
            {
                histogram!(m::EVENT_LATENCY, "function" => label).record(age.as_secs_f64());
            }
            c.bus.ack(&d).await
        }
        // No room to run (the decode-memory budget stayed spent): waiting is not failing, so
        // the event goes back without spending an attempt.
        Err(e) if e.kind() == ErrorKind::Overloaded => {
            counter!(m::EVENTS_RETRIED, "function" => label, "kind" => e.kind().label())
                .increment(1);
            tracing::info!(function = %c.function, key = %d.event.object.key, error = %e, "postponed");
            c.bus.postpone(&d, due_after(c.retries.backoff)).await
        }
        Err(e) if e.kind().retryable() && d.attempts < c.retries.max => {
            let backoff = c.retries.backoff.saturating_mul(1 << d.attempts.min(16));
            counter!(m::EVENTS_RETRIED, "function" => label, "kind" => e.kind().label())
                .increment(1);
            tracing::warn!(function = %c.function, key = %d.event.object.key, error = %e, ?backoff, "retrying");
            c.bus.retry(&d, due_after(backoff)).await
        }
        Err(e) => {
            counter!(m::EVENTS_DEAD_LETTERED, "function" => label, "kind" => e.kind().label())
                .increment(1);
            tracing::warn!(function = %c.function, key = %d.event.object.key, error = %e, "dead-lettered");
            c.bus.dead_letter(&d, e.kind().label(), e.reason()).await
        }
    };
    if let Err(e) = recorded {
        // Not acknowledged: the pair stays on the bus and is delivered again after a restart.
        tracing::error!(function = %c.function, error = %e, "cannot record the outcome on the bus");
    }
}

async fn attempt(c: &Consumer, admission: Admission, d: &Delivery) -> Result<(), FnError> {
    let object = &d.event.object;
    let limit = c.pool.config().max_input;
    // A function that streams (video) opens the object; the others get its bytes.
    let (input, version) = if c.streams_input {
        let f = c.store.open(&object.bucket, &object.key, limit).await;
        let f = f.map_err(read_error)?;
        (Input::streamed(f.body), f.info)
    } else {
        let f = c.store.get(&object.bucket, &object.key, limit).await;
        let f = f.map_err(read_error)?;
        (Input::new(f.body), f.info)
    };
    let output = admission.run(input).await?;
    // The version actually read, which may be newer than the one the event named.
    let metadata = Provenance {
        bucket: &object.bucket,
        key: &object.key,
        etag: &version.etag,
        function: &c.function,
        spec_hash: &c.spec_hash,
    }
    .metadata();
    for a in output.artifacts {
        let key = c
            .template
            .render_for(&a, &object.bucket, &object.key)
            .map_err(|e| FnError::bad_input(format!("output key: {e}")))?;
        let options = PutOptions {
            content_type: Some(a.content_type.clone()),
            metadata: metadata.clone(),
        };
        c.store
            .put(&c.output_bucket, &key, a.bytes.into(), &options)
            .await
            .map_err(write_error)?;
    }
    Ok(())
}

/// Milliseconds since the epoch, `after` from now.
fn due_after(after: Duration) -> u64 {
    (std::time::SystemTime::now() + after)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_millis() as u64)
        .unwrap_or(0)
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

/// A failed write: a key the store cannot hold or refused credentials fail the same way every
/// time; a missing output bucket may be created meanwhile.
fn write_error(e: StoreError) -> FnError {
    match e.kind() {
        StoreErrorKind::BadRequest | StoreErrorKind::Denied | StoreErrorKind::TooLarge => {
            FnError::bad_input(format!("writing an output: {e}"))
        }
        StoreErrorKind::NotFound | StoreErrorKind::Transient => {
            FnError::transient(format!("writing an output: {e}"))
        }
    }
}
