//! The NATS subject trigger: `- nats: { subject: "media.in.>" }`, on the bus's NATS servers, in
//! a queue group per function so the nodes share the messages. A message is either
//! - an object reference, JSON `{"bucket": ..., "key": ...}` with no `Content-Type` header: it
//!   becomes an `ObjectCreated` event recorded on the bus for this function (as a webhook's
//!   would be); a reply subject gets `{"accepted": 1, "id": ...}` once it is durable; or
//! - an inline payload, with a `Content-Type` header: the function runs on it at once (admitted
//!   as an HTTP invocation is, refused when full) and a reply subject gets what
//!   `/v1/functions/{name}/invoke` answers in JSON. Without a reply subject there is nowhere for
//!   the result to go: it is refused with a log line.
//!
//! Failures answer `{"error": reason, "kind": label}`, the labels of the HTTP API.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_functions::{ErrorKind, FnError, Input};
use weir_workers::Pool;

use super::Ingress;
use crate::events::{Event, ObjectRef, stable_id};

#[derive(Deserialize)]
struct Reference {
    bucket: String,
    key: String,
}

/// What one function's subscription needs.
struct Subscription {
    function: String,
    subject: String,
    pool: Pool,
    ingress: Arc<Ingress>,
    client: async_nats::Client,
}

/// Subscribe every `nats` trigger; each subscription ends when `stop` turns true.
pub fn start(
    functions: &[crate::config::LoadedFunction],
    pools: &std::collections::HashMap<String, Pool>,
    ingress: &Arc<Ingress>,
    client: Option<&async_nats::Client>,
    stop: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for f in functions {
        for t in &f.spec.triggers {
            let crate::config::Trigger::Nats(n) = t else {
                continue;
            };
            // The config refuses a nats trigger without a NATS bus; nothing to subscribe to.
            let (Some(client), Some(pool)) = (client, pools.get(&f.spec.name)) else {
                continue;
            };
            let s = Subscription {
                function: f.spec.name.clone(),
                subject: n.subject.clone(),
                pool: pool.clone(),
                ingress: ingress.clone(),
                client: client.clone(),
            };
            tasks.push(tokio::spawn(run(Arc::new(s), stop.clone())));
        }
    }
    tasks
}

async fn run(s: Arc<Subscription>, mut stop: watch::Receiver<bool>) {
    let group = format!("weir.{}", s.function);
    let mut messages = match s.client.queue_subscribe(s.subject.clone(), group).await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(function = %s.function, subject = %s.subject, error = %e, "cannot subscribe");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            m = messages.next() => m,
            _ = stop.wait_for(|v| *v) => None,
        };
        let Some(message) = message else {
            let _ = messages.unsubscribe().await;
            return;
        };
        // Each message on its own task: a long invocation does not hold up the next one.
        tokio::spawn(handle(s.clone(), message));
    }
}

async fn handle(s: Arc<Subscription>, m: async_nats::Message) {
    let inline = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Content-Type"))
        .is_some();
    let answer = if inline {
        invoke(&s, m.payload.clone(), m.reply.is_some()).await
    } else {
        record(&s, &m).await
    };
    if let Some(reply) = m.reply {
        let body = Bytes::from(answer.to_string());
        if let Err(e) = s.client.publish(reply, body).await {
            tracing::warn!(function = %s.function, error = %e, "cannot reply");
        }
    } else if answer.get("error").is_some() {
        tracing::warn!(function = %s.function, subject = %m.subject.as_str(), %answer, "a message was refused");
    }
}

fn refused(e: &FnError) -> serde_json::Value {
    json!({ "error": e.reason(), "kind": e.kind().label() })
}

/// An object reference, recorded on the bus for this function.
async fn record(s: &Subscription, m: &async_nats::Message) -> serde_json::Value {
    let r: Reference = match serde_json::from_slice(&m.payload) {
        Ok(r) => r,
        Err(e) => {
            let why = format!(
                "expected JSON {{\"bucket\", \"key\"}}, or a Content-Type header for an inline payload: {e}"
            );
            return refused(&FnError::bad_input(why));
        }
    };
    let time = crate::events::now();
    // The sender's message id when it gives one (a message sent twice is then stored once).
    let id = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| stable_id(&["weir:nats", m.subject.as_str(), &r.bucket, &r.key, &time]));
    let event = Event {
        id: id.clone(),
        source: "weir:nats".into(),
        time,
        name: "s3:ObjectCreated:Put".into(),
        object: ObjectRef {
            bucket: r.bucket,
            key: r.key,
            size: None,
            etag: None,
            version: None,
        },
        ..Default::default()
    };
    match s.ingress.record_to(event, vec![s.function.clone()]).await {
        Ok(n) => json!({ "accepted": n, "id": id }),
        Err(e) => refused(&FnError::new(ErrorKind::Unavailable, e.to_string())),
    }
}

/// An inline payload, run now; answered as `/v1/functions/{name}/invoke` answers in JSON.
async fn invoke(s: &Subscription, payload: Bytes, answered: bool) -> serde_json::Value {
    if !answered {
        let why = "an inline payload needs a reply subject: its result has nowhere else to go";
        return refused(&FnError::bad_input(why));
    }
    let limit = s.pool.config().max_input;
    if payload.len() as u64 > limit {
        let why = format!(
            "the payload is {} bytes, over max_input {limit}",
            payload.len()
        );
        return refused(&FnError::new(ErrorKind::TooLarge, why));
    }
    let admission = match s.pool.try_admit() {
        Ok(a) => a,
        Err(e) => return refused(&e),
    };
    match admission.run(Input::new(payload)).await {
        Ok(output) => crate::http::reply::json_body(&s.function, &output),
        Err(e) => refused(&e),
    }
}
