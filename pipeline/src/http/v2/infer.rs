//! `POST /v2/models/{m}[/versions/{v}]/infer`: admission before the body is read (429 when the
//! inference queue is full), the body bounded, then parse, run and encode on the CPU pool, off
//! the async runtime's threads.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use weir_models::ModelError;
use weir_models::oip::{encode_response, parse_request};

use super::{Shared, encoding, lookup, v2_error};

/// What bounds inference over HTTP.
pub struct Inference {
    /// Requests admitted at once (running or waiting for a core); more are refused with 429.
    pub gate: Arc<Semaphore>,
    pub cpu: Arc<rayon::ThreadPool>,
    /// The largest request body.
    pub max_body: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

impl Inference {
    /// `requests` admitted at once, bodies of at most `max_body` bytes (decompressed).
    pub fn new(cpu: Arc<rayon::ThreadPool>, requests: usize, max_body: usize) -> Inference {
        Inference {
            gate: Arc::new(Semaphore::new(requests)),
            cpu,
            max_body,
            body_timeout: Duration::from_secs(30),
        }
    }
}

const HEADER_LENGTH: &str = "inference-header-content-length";

/// Bodies up to this size are parsed on the runtime thread that read them.
const INLINE_PARSE: usize = 64 << 10;

pub async fn infer(
    State(st): State<Shared>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = std::time::Instant::now();
    let inf = &st.inference;
    let model = match lookup(&st, &p).await {
        Ok(m) => m,
        Err(res) => {
            super::super::invoke::discard(&headers, body, 1 << 20).await;
            return res.into_response();
        }
    };
    let Ok(permit) = inf.gate.clone().try_acquire_owned() else {
        super::super::invoke::discard(&headers, body, inf.max_body as u64).await;
        let mut res = v2_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many inference requests in flight; retry shortly",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    };
    let header_length = match headers.get(HEADER_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()) {
            Some(n) => Some(n),
            None => {
                return v2_error(
                    StatusCode::BAD_REQUEST,
                    "Inference-Header-Content-Length must be a number of bytes",
                );
            }
        },
    };
    let coding = match encoding::request_coding(&headers) {
        Ok(c) => c,
        Err(m) => return v2_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, m),
    };
    let answer_coding = encoding::response_coding(&headers);
    let bytes = match tokio::time::timeout(
        inf.body_timeout,
        axum::body::to_bytes(body, inf.max_body),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if super::super::invoke::is_length_limit(&e) => {
            return v2_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {} bytes", inf.max_body),
            );
        }
        Ok(Err(e)) => {
            return v2_error(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            );
        }
        Err(_) => {
            return v2_error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        }
    };
    let body_len = bytes.len();
    // Small bodies are parsed right here (microseconds); large ones on tokio's blocking threads.
    // Not on the CPU pool: `classify` holds CPU-pool threads while its rows wait in the same model
    // queue, and a request parsed behind them could never join their batch. Then run through the
    // model's batcher (joining other requests, uploads too) or, without one, on the CPU pool.
    let (m, max_body) = (model.clone(), inf.max_body);
    let parse = move || {
        let bytes = encoding::decode(coding, bytes, max_body).map_err(|e| match e {
            encoding::DecodeError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()),
            e => (StatusCode::BAD_REQUEST, e.to_string()),
        })?;
        let parsed = parse_request(&bytes, header_length)
            .map_err(ModelError::BadInput)
            .and_then(|req| {
                let id = req.id.clone();
                Ok((id, weir_models::infer::prepare(&m, req)?.since(arrived)))
            });
        parsed.map_err(|e| (status_of(&e), e.to_string()))
    };
    // Compressed bodies are always inflated off the runtime threads.
    let prepared = if body_len <= INLINE_PARSE && coding == encoding::Coding::Identity {
        parse()
    } else {
        tokio::task::spawn_blocking(parse)
            .await
            .unwrap_or_else(|e| {
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the request could not be parsed: {e}"),
                ))
            })
    };
    let (id, mut prepared) = match prepared {
        Ok(p) => p,
        Err((code, message)) => return v2_error(code, message),
    };
    let inputs = std::mem::take(&mut prepared.inputs);
    let outputs = match &model.queue {
        Some(q) => match q.submit(inputs, "http") {
            Ok(rx) => rx
                .await
                .unwrap_or_else(|_| Err(ModelError::Run("the model's instance stopped".into()))),
            Err(e) => Err(e),
        },
        // A model that runs in microseconds runs here: two thread hops would cost more.
        None if model.runs_inline() => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                model.run_blocking(inputs, "http")
            }))
            .unwrap_or_else(|_| Err(ModelError::Run("the engine panicked".into())))
        }
        None => {
            let m = model.clone();
            on_cpu(&inf.cpu, move || m.run_blocking(inputs, "http")).await
        }
    };
    drop(permit);
    let encoded = prepared.finish(&model, outputs).and_then(|outputs| {
        encode_response(&model.name, model.version, id.as_deref(), &outputs)
            .map_err(ModelError::BadInput)
    });
    let (body, header_len) = match encoded {
        Ok(b) => b,
        Err(e) => return model_error(e),
    };
    let content_type = if header_len.is_some() {
        "application/octet-stream"
    } else {
        "application/json"
    };
    let body = match answer_coding {
        encoding::Coding::Identity => body,
        c if body.len() <= INLINE_PARSE => encoding::encode(c, body),
        c => tokio::task::spawn_blocking(move || encoding::encode(c, body))
            .await
            .unwrap_or_default(),
    };
    let mut res = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response();
    // The header length counts the JSON before compression, as Triton's clients read it.
    if let Some(n) = header_len {
        res.headers_mut()
            .insert("Inference-Header-Content-Length", HeaderValue::from(n));
    }
    if answer_coding != encoding::Coding::Identity {
        res.headers_mut().insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(answer_coding.name()),
        );
    }
    res
}

fn status_of(e: &ModelError) -> StatusCode {
    StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn model_error(e: ModelError) -> Response {
    let code = status_of(&e);
    let message = match e {
        ModelError::BadInput(m) | ModelError::Overloaded(m) => m,
        e => e.to_string(),
    };
    let mut res = v2_error(code, message);
    if code == StatusCode::TOO_MANY_REQUESTS {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    res
}

/// Run `f` on the CPU pool and wait for it without holding a runtime thread; a panic fails
/// this request only.
async fn on_cpu<T: Send + 'static>(
    cpu: &rayon::ThreadPool,
    f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> Result<T, ModelError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    cpu.spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(ModelError::Run("the engine panicked".into())));
        let _ = tx.send(result);
    });
    rx.await.unwrap_or_else(|_| {
        Err(ModelError::Run(
            "the inference task ended without an answer".into(),
        ))
    })
}
