//! The Lambda Runtime API (2018-06-01) as one worker process sees it, on a loopback port of its
//! own: the process long-polls `next`, answers with `response` or `error`, or reports a failed
//! start with `init/error`. Only its own worker's invocations pass through a port, and nothing
//! else of Weir is reachable there. The port is told to that worker only, but it is plain
//! loopback TCP: any local process that finds it could poll it, so workers of mutually
//! distrusting users belong on separate machines (or network namespaces).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use super::lambda;

/// The largest answer a handler may give, as Lambda's synchronous limit.
pub const MAX_ANSWER: usize = 6 << 20;

/// One invocation on its way to the process.
pub struct Invocation {
    pub id: String,
    /// Milliseconds since the epoch, as `Lambda-Runtime-Deadline-Ms` gives it.
    pub deadline_ms: u64,
    pub body: Bytes,
    pub reply: oneshot::Sender<Answer>,
}

/// What the handler said.
#[derive(Debug)]
pub enum Answer {
    Ok(Bytes),
    /// `errorType: errorMessage`.
    Failed(String),
}

/// What the API handlers and the worker share.
pub struct Link {
    pub next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// The invocation the process took last: its id stays after the answer (so the worker can
    /// tell "taken" from "never taken"), its reply only until then.
    pub taken: Mutex<Option<Taken>>,
    /// Why the process can serve no more (it exited, or its start failed); set once.
    pub ended: watch::Sender<Option<String>>,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub arn: HeaderValue,
    /// How long the process held each invocation (`weir_process_duration_seconds`).
    pub duration: metrics::Histogram,
}

impl Link {
    /// Record why the process ends, unless a reason is already there (the first one is the
    /// cause; an exit after an init error is its consequence).
    pub fn end(&self, why: String) {
        self.ended.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(why);
                true
            } else {
                false
            }
        });
    }

    /// The request id of the invocation the process took last, for its log lines.
    pub fn current(&self) -> Option<String> {
        self.lock().as_ref().map(|t| t.id.clone())
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Option<Taken>> {
        self.taken.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the process took.
pub struct Taken {
    pub id: String,
    pub reply: Option<oneshot::Sender<Answer>>,
    /// When its `next` answer was ready to go out: the process holds it from here.
    pub handed: Instant,
}

pub fn router(link: Arc<Link>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .fallback(|| async {
            refuse(
                StatusCode::NOT_FOUND,
                "UnknownRoute",
                "only the Lambda Runtime API is served here",
            )
        })
        // Error reports may be as large as answers; `response` reads its own body.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_ANSWER))
        .with_state(link)
}

async fn next(State(link): State<Arc<Link>>) -> Response {
    let inv = {
        let mut next = link.next.lock().await;
        loop {
            let Some(inv) = next.recv().await else {
                return refuse(StatusCode::GONE, "Shutdown", "the worker is stopping");
            };
            // Checked and handed out under one lock, so a caller giving up at its deadline
            // (which closes the reply under the same lock) either sees it taken or is skipped.
            let mut taken = link.lock();
            if inv.reply.is_closed() {
                continue;
            }
            let Invocation {
                id,
                deadline_ms,
                body,
                reply,
            } = inv;
            *taken = Some(Taken {
                id: id.clone(),
                reply: Some(reply),
                handed: Instant::now(),
            });
            break (id, deadline_ms, body);
        }
    };
    let (id, deadline_ms, body) = inv;
    let mut res = body.into_response();
    let h = res.headers_mut();
    let trace = format!(
        "Root=1-{}-{};Sampled=0",
        &id.replace('-', "")[..8],
        &id.replace('-', "")[8..]
    );
    let header = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static(""));
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("lambda-runtime-aws-request-id", header(&id));
    h.insert("lambda-runtime-deadline-ms", HeaderValue::from(deadline_ms));
    h.insert("lambda-runtime-invoked-function-arn", link.arn.clone());
    h.insert("lambda-runtime-trace-id", header(&trace));
    // The headers are Weir's work too: the process holds the invocation from now.
    if let Some(t) = link.lock().as_mut().filter(|t| t.id == id) {
        t.handed = Instant::now();
    }
    res
}

async fn response(
    State(link): State<Arc<Link>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(reply) = take(&link, &id) else {
        return unknown_id(&id);
    };
    let streaming = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    if streaming {
        let why = "Runtime.UnsupportedResponseMode: streamed responses are not supported; \
                   answer with a buffered response";
        let _ = reply.send(Answer::Failed(why.into()));
        return refuse(StatusCode::BAD_REQUEST, "UnsupportedResponseMode", why);
    }
    match axum::body::to_bytes(body, MAX_ANSWER).await {
        Ok(bytes) => {
            let _ = reply.send(Answer::Ok(bytes));
            accepted()
        }
        Err(_) => {
            let why = format!(
                "Function.ResponseSizeTooLarge: the answer was over {MAX_ANSWER} bytes, or cut off"
            );
            let _ = reply.send(Answer::Failed(why.clone()));
            refuse(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &why)
        }
    }
}

async fn error(
    State(link): State<Arc<Link>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(reply) = take(&link, &id) else {
        return unknown_id(&id);
    };
    let _ = reply.send(Answer::Failed(lambda::error_line(
        &body,
        error_type(&headers),
    )));
    accepted()
}

async fn init_error(State(link): State<Arc<Link>>, headers: HeaderMap, body: Bytes) -> Response {
    let line = lambda::error_line(&body, error_type(&headers));
    link.end(format!(
        "Runtime.InitError: the handler failed to start: {line}"
    ));
    accepted()
}

fn error_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
}

/// The reply of the invocation `id` names, once; the time the process held it is recorded.
fn take(link: &Link, id: &str) -> Option<oneshot::Sender<Answer>> {
    let reply = link
        .lock()
        .as_mut()
        .filter(|t| t.id == id)
        .and_then(|t| Some((t.reply.take()?, t.handed)));
    reply.map(|(reply, handed)| {
        link.duration.record(handed.elapsed().as_secs_f64());
        reply
    })
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

fn unknown_id(id: &str) -> Response {
    let msg = format!("{id} is not the invocation this worker is running");
    refuse(StatusCode::BAD_REQUEST, "InvalidRequestID", &msg)
}

fn refuse(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "errorType": kind, "errorMessage": message });
    (status, axum::Json(body)).into_response()
}
