//! `kind: process`: users' own code in warm worker processes that speak the AWS Lambda Runtime
//! API, so Lambda handlers (Python's `awslambdaric`, Rust's `lambda_runtime`, any runtime
//! interface client) run unchanged on every trigger.
//!
//! A batch of object events is one invocation whose event has a record per object; a record
//! the handler reports in `batchItemFailures` fails alone, and when the whole invocation fails
//! each record is tried alone so one bad record never fails its neighbours. HTTP calls are one
//! invocation each, and the handler's answer becomes the HTTP reply.

mod api;
mod fleet;
pub mod lambda;
mod logs;
mod spec;
mod worker;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;

use crate::origin::{HttpRequest, ObjectEvent, Origin};
use crate::{Artifact, ExecCtx, FnError, Function, Input, Limits, Output, Started};
pub use fleet::Sizes;
use fleet::{Fleet, Lease};
pub use spec::ProcessParams;
use spec::Spec;
use worker::Outcome;

/// The most records one invocation carries.
pub const MAX_BATCH: usize = 1000;

pub struct Process {
    fleet: Arc<Fleet>,
}

impl Process {
    /// Checks the params (the program exists and may run; `base` is the spec file's folder).
    pub fn new(
        name: &str,
        params: ProcessParams,
        base: Option<&std::path::Path>,
        sizes: Sizes,
    ) -> Result<Process, (&'static str, String)> {
        let spec = Spec::resolve(name, params, base)?;
        Ok(Process {
            fleet: Fleet::new(spec, sizes),
        })
    }
}

impl Function for Process {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: MAX_BATCH,
            gpu_capable: false,
            streams_input: false,
            max_decode_bytes: 0,
        }
    }

    fn external(&self) -> bool {
        true
    }

    fn start(&self, started: &Started) {
        let fleet = self.fleet.clone();
        let (env, scratch) = (started.store_env.clone(), started.scratch.clone());
        match runtime() {
            Ok(rt) => {
                let _on = rt.enter();
                fleet.start(env, scratch);
            }
            Err(e) => tracing::error!(function = %self.fleet.name(), "{e}"),
        }
    }

    fn instances(&self) -> Option<crate::Instances> {
        let (idle, all) = self.fleet.counts();
        Some(crate::Instances { idle, all })
    }

    fn stop(&self) {
        if let Ok(rt) = runtime() {
            let _on = rt.enter();
            self.fleet.stop();
        }
    }

    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => return vec![Err(FnError::transient(e)); batch.len()],
        };
        let run = run_batch(self.fleet.clone(), batch.to_vec(), ctx.deadlines.clone());
        // This thread only waits (`external`): it drives the batch's future itself, so the
        // answer wakes it directly; the ports and processes stay on the process runtime.
        // (A blocking thread, not one of a runtime's workers, so `block_on` may run here.)
        rt.block_on(run)
    }
}

/// The runtime the workers' ports, pipes and supervisors live on: Weir's own may be a test's
/// short-lived one, and the workers must outlive any caller.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("weir-process")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the process kind's runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

async fn run_batch(
    fleet: Arc<Fleet>,
    batch: Vec<Input>,
    deadlines: Vec<std::time::Instant>,
) -> Vec<Result<Output, FnError>> {
    let deadline = |i: usize| {
        let d = deadlines
            .get(i)
            .copied()
            .unwrap_or_else(crate::function::far);
        tokio::time::Instant::from_std(d)
    };
    let mut results: Vec<Option<Result<Output, FnError>>> = vec![None; batch.len()];
    let objects: Vec<usize> = (0..batch.len())
        .filter(|&i| matches!(batch[i].origin.as_deref(), Some(Origin::Object(_))))
        .collect();
    let singles = (0..batch.len()).filter(|i| !objects.contains(i)).map(|i| {
        let fleet = fleet.clone();
        let input = &batch[i];
        async move { (i, one_call(&fleet, input, deadline(i)).await) }
    });
    let records = async {
        let events: Vec<&ObjectEvent> = objects
            .iter()
            .filter_map(|&i| match batch[i].origin.as_deref() {
                Some(Origin::Object(e)) => Some(e),
                _ => None,
            })
            .collect();
        let soonest = objects.iter().map(|&i| deadline(i)).min();
        match soonest {
            Some(d) => records_call(&fleet, &events, d).await,
            None => Vec::new(),
        }
    };
    let (single, recorded) =
        futures::future::join(futures::future::join_all(singles), records).await;
    for (i, r) in single {
        results[i] = Some(r);
    }
    for (i, r) in objects.iter().zip(recorded) {
        results[*i] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(FnError::transient("the input was not run"))))
        .collect()
}

/// An HTTP call (or a message without an origin): one invocation, its answer the reply. A cron
/// firing is one invocation too, answered as an object event's handler is.
async fn one_call(
    fleet: &Fleet,
    input: &Input,
    deadline: tokio::time::Instant,
) -> Result<Output, FnError> {
    let request = match input.origin.as_deref() {
        Some(Origin::Http(r)) => r.clone(),
        Some(Origin::Scheduled(e)) => {
            let spec = fleet.spec();
            let place = lambda::Place {
                region: spec.region(),
            };
            let body = lambda::scheduled_event(e, &place).to_string();
            let answer = invoke(fleet, lambda::request_id(), Bytes::from(body), deadline).await?;
            return Ok(object_output(&answer));
        }
        _ => HttpRequest {
            method: "POST".into(),
            path: "/".into(),
            headers: input
                .content_type
                .iter()
                .map(|c| ("content-type".to_string(), c.clone()))
                .collect(),
            ..Default::default()
        },
    };
    let id = lambda::request_id();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let event = lambda::http_event(&request, &input.bytes, &id, now.as_millis() as u64);
    let answer = invoke(fleet, id, Bytes::from(event), deadline).await?;
    let reply = lambda::http_reply(&answer)
        .map_err(|e| FnError::transient(format!("the handler's answer: {e}")))?;
    let artifact = artifact("response", reply.content_type(), reply.body.clone());
    let mut out = Output::new(vec![artifact], summary(&answer));
    out.reply = Some(reply);
    Ok(out)
}

/// Object events: one invocation with a record each; a failed invocation is split into one
/// per record, so each record's own error is what it fails with.
async fn records_call(
    fleet: &Fleet,
    events: &[&ObjectEvent],
    deadline: tokio::time::Instant,
) -> Vec<Result<Output, FnError>> {
    match records_once(fleet, events, deadline).await {
        Ok(answer) => {
            let failed = match lambda::failed_items(&answer, events) {
                Ok(f) => f,
                Err(e) => {
                    let e = FnError::transient(format!("the handler's batchItemFailures: {e}"));
                    return vec![Err(e); events.len()];
                }
            };
            (0..events.len())
                .map(|i| {
                    if failed.contains(&i) {
                        Err(FnError::transient(
                            "the handler reported this record failed (batchItemFailures)",
                        ))
                    } else {
                        Ok(object_output(&answer))
                    }
                })
                .collect()
        }
        Err(e) if events.len() > 1 && e.kind() == crate::ErrorKind::Transient => {
            let alone = events
                .iter()
                .map(|e| records_once(fleet, std::slice::from_ref(e), deadline));
            futures::future::join_all(alone)
                .await
                .into_iter()
                .map(|r| r.map(|a| object_output(&a)))
                .collect()
        }
        Err(e) => vec![Err(e); events.len()],
    }
}

async fn records_once(
    fleet: &Fleet,
    events: &[&ObjectEvent],
    deadline: tokio::time::Instant,
) -> Result<Bytes, FnError> {
    let spec = fleet.spec();
    let place = lambda::Place {
        region: spec.region(),
    };
    let body = lambda::object_records(events, &place).to_string();
    invoke(fleet, lambda::request_id(), Bytes::from(body), deadline).await
}

/// What an object event's handler returned: the summary, and an artifact for the function's
/// `output` (an API Gateway-shaped answer gives its body and content type) unless it returned
/// nothing.
fn object_output(answer: &[u8]) -> Output {
    let trimmed = answer.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        return Output::new(Vec::new(), Value::Null);
    }
    // A report of the batch's failures alone says nothing of a record worth keeping.
    let parsed: Option<Value> = serde_json::from_slice(trimmed).ok();
    if let Some(Value::Object(map)) = &parsed
        && map.len() == 1
        && map.contains_key("batchItemFailures")
    {
        return Output::new(Vec::new(), parsed.unwrap_or_default());
    }
    let (content_type, body) = match lambda::http_reply(answer) {
        Ok(r) => (r.content_type().to_string(), r.body),
        Err(_) => ("application/json".to_string(), answer.to_vec()),
    };
    Output::new(
        vec![artifact("response", &content_type, body)],
        summary(answer),
    )
}

fn artifact(stem: &str, content_type: &str, bytes: Vec<u8>) -> Artifact {
    let ext = match content_type.split(';').next().unwrap_or("").trim() {
        "application/json" => "json",
        "text/plain" => "txt",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        _ => "bin",
    };
    Artifact {
        name: format!("{stem}.{ext}"),
        content_type: content_type.to_string(),
        bytes,
        vars: Default::default(),
        placement: Default::default(),
    }
}

fn summary(answer: &[u8]) -> Value {
    serde_json::from_slice(answer)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(answer).into_owned()))
}

/// One invocation on a leased worker, its outcome as a function result.
async fn invoke(
    fleet: &Fleet,
    id: String,
    body: Bytes,
    deadline: tokio::time::Instant,
) -> Result<Bytes, FnError> {
    // A worker that died between invocations never saw this one: one more try on another.
    for last in [false, true] {
        let mut lease: Lease = fleet
            .lease(deadline)
            .await
            .map_err(|why| FnError::timeout(format!("no worker process: {why}")))?;
        match fleet
            .invoke(&mut lease, id.clone(), body.clone(), deadline)
            .await
        {
            Outcome::Ok(answer) => return Ok(answer),
            Outcome::Failed(why) | Outcome::Ended(why) => return Err(FnError::transient(why)),
            Outcome::Lost(why) if last => return Err(FnError::transient(why)),
            Outcome::Lost(_) => continue,
            Outcome::TimedOut => {
                return Err(FnError::timeout(
                    "Task timed out: the handler ran past the function's timeout; its process \
                     was stopped",
                ));
            }
            Outcome::NotTaken => {
                return Err(FnError::timeout(
                    "the worker process did not ask for the invocation before its deadline \
                     (still starting?)",
                ));
            }
        }
    }
    Err(FnError::transient("no worker process took the invocation"))
}
