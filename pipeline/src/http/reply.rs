//! How an invocation's output goes back: JSON with base64 artifacts (the default), multipart/mixed
//! with a JSON summary part first (when the client accepts it), or the first artifact alone.

use std::hash::{BuildHasher, Hasher};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use serde_json::json;
use weir_functions::Output;

use super::error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The function's own reply when it chose one (`Output::reply`), else `Json`.
    Default,
    /// The JSON envelope even where the function chose a reply (`return=all`).
    Json,
    Multipart,
    First,
}

/// The reply form from the query (`return=first`, `return=all`, nothing) and `Accept`. With
/// `open` (users' code, which reads the query itself) other parameters pass; else they are
/// refused.
pub fn choose(query: Option<&str>, headers: &HeaderMap, open: bool) -> Result<Form, String> {
    let mut all = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("return", "first")) => return Ok(Form::First),
            Some(("return", "all")) => all = true,
            Some(("return", other)) => {
                return Err(format!(
                    "return={other:?} is not known: use return=first or leave it out"
                ));
            }
            // Asked for on the way in (`invoke::wants_async`), not a form of the reply.
            Some(("async", "true" | "false")) => {}
            _ if open => {}
            _ => {
                return Err(format!(
                    "unknown query parameter {pair:?}: only return=first, return=all and async=true are known"
                ));
            }
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let multipart = accept
        .split(',')
        .any(|t| t.trim().to_ascii_lowercase().starts_with("multipart/mixed"));
    Ok(if multipart {
        Form::Multipart
    } else if all {
        Form::Json
    } else {
        Form::Default
    })
}

fn listing(output: &Output) -> Vec<serde_json::Value> {
    output
        .artifacts
        .iter()
        .map(|a| json!({ "name": a.name, "content_type": a.content_type, "size": a.bytes.len() }))
        .collect()
}

/// Outputs above this many bytes are encoded off the async runtime's threads.
const INLINE_RENDER_BYTES: usize = 256 * 1024;

/// Render, moving large outputs (base64, multipart copies) to the blocking pool.
pub async fn render_off_runtime(form: Form, function: String, output: Output) -> Response {
    let total: usize = output.artifacts.iter().map(|a| a.bytes.len()).sum();
    if total <= INLINE_RENDER_BYTES {
        return render(form, &function, output);
    }
    match tokio::task::spawn_blocking(move || render(form, &function, output)).await {
        Ok(res) => res,
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "transient",
            format!("rendering the reply failed: {e}"),
        ),
    }
}

pub fn render(form: Form, function: &str, output: Output) -> Response {
    match form {
        Form::Default => match output.reply {
            Some(reply) => own_reply(reply),
            None => axum::Json(json_body(function, &output)).into_response(),
        },
        Form::First => match output.artifacts.into_iter().next() {
            Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response(),
            None => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_input",
                "the function produced no artifact".into(),
            ),
        },
        Form::Json => axum::Json(json_body(function, &output)).into_response(),
        Form::Multipart => multipart(function, output),
    }
}

/// The status, headers and body the function chose.
fn own_reply(reply: weir_functions::Reply) -> Response {
    let mut res = Response::new(Body::from(reply.body));
    *res.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    for (k, v) in reply.headers {
        let (Ok(k), Ok(v)) = (
            header::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) else {
            continue;
        };
        // The length is the body's; hop-by-hop headers are the server's own business.
        if k == header::CONTENT_LENGTH || k == header::TRANSFER_ENCODING || k == header::CONNECTION
        {
            continue;
        }
        res.headers_mut().append(k, v);
    }
    res
}

/// The JSON reply: the summary, and each artifact with its bytes in base64 (also what a NATS
/// request gets back).
pub fn json_body(function: &str, output: &Output) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut artifacts = listing(output);
    for (entry, a) in artifacts.iter_mut().zip(&output.artifacts) {
        entry["data"] = b64.encode(&a.bytes).into();
    }
    json!({ "function": function, "summary": output.summary, "artifacts": artifacts })
}

/// The parts go out as they are, one chunk each, without being copied into one buffer.
fn multipart(function: &str, output: Output) -> Response {
    let boundary = boundary_not_in(&output);
    let summary =
        json!({ "function": function, "summary": output.summary, "artifacts": listing(&output) });
    let summary = summary.to_string();
    let mut chunks: Vec<Bytes> = Vec::with_capacity(2 * output.artifacts.len() + 3);
    chunks.push(Bytes::from(format!(
        "--{boundary}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{summary}\r\n",
        summary.len()
    )));
    for a in output.artifacts {
        chunks.push(Bytes::from(format!(
            "--{boundary}\r\nContent-Type: {}\r\nContent-Disposition: attachment; filename=\"{}\"\r\nContent-Length: {}\r\n\r\n",
            a.content_type,
            a.name.replace(['"', '\r', '\n'], "_"),
            a.bytes.len()
        )));
        chunks.push(Bytes::from(a.bytes));
        chunks.push(Bytes::from_static(b"\r\n"));
    }
    chunks.push(Bytes::from(format!("--{boundary}--\r\n")));
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
    let mut res = Body::from_stream(stream).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res
}

/// A random 128-bit boundary, checked against every part (RFC 2046 forbids it inside one).
fn boundary_not_in(output: &Output) -> String {
    loop {
        let b = format!("weir-{:016x}{:016x}", random_u64(), random_u64());
        let finder = memchr::memmem::Finder::new(b.as_bytes());
        if output
            .artifacts
            .iter()
            .all(|a| finder.find(&a.bytes).is_none())
        {
            return b;
        }
    }
}

/// Randomness from the standard library's per-process hash keys, a counter and the clock: a
/// collision with a part's bytes is vanishingly unlikely, and checked anyway.
fn random_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}
