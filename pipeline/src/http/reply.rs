//! How an invocation's output goes back: JSON with base64 artifacts (the default), multipart/mixed
//! with a JSON summary part first (when the client accepts it), or the first artifact alone.

use std::hash::{BuildHasher, Hasher};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use weir_functions::Output;

use super::error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Multipart,
    First,
}

pub fn choose(ret: Option<&str>, headers: &HeaderMap) -> Result<Form, String> {
    match ret {
        Some("first") => return Ok(Form::First),
        Some("all") | None => {}
        Some(other) => {
            return Err(format!(
                "return={other:?} is not known: use return=first or leave it out"
            ));
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
    } else {
        Form::Json
    })
}

fn listing(output: &Output) -> Vec<serde_json::Value> {
    output
        .artifacts
        .iter()
        .map(|a| json!({ "name": a.name, "content_type": a.content_type, "size": a.bytes.len() }))
        .collect()
}

pub fn render(form: Form, function: &str, output: Output) -> Response {
    match form {
        Form::First => match output.artifacts.into_iter().next() {
            Some(a) => ([(header::CONTENT_TYPE, a.content_type)], a.bytes).into_response(),
            None => error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bad_input",
                "the function produced no artifact".into(),
            ),
        },
        Form::Json => {
            let b64 = base64::engine::general_purpose::STANDARD;
            let artifacts: Vec<_> = output
                .artifacts
                .iter()
                .map(|a| {
                    json!({
                        "name": a.name, "content_type": a.content_type, "size": a.bytes.len(),
                        "data": b64.encode(&a.bytes),
                    })
                })
                .collect();
            axum::Json(
                json!({ "function": function, "summary": output.summary, "artifacts": artifacts }),
            )
            .into_response()
        }
        Form::Multipart => multipart(function, &output),
    }
}

fn multipart(function: &str, output: &Output) -> Response {
    let boundary = boundary_not_in(output);
    let summary =
        json!({ "function": function, "summary": output.summary, "artifacts": listing(output) });
    let summary = summary.to_string();
    let mut body = Vec::with_capacity(
        output
            .artifacts
            .iter()
            .map(|a| a.bytes.len() + 200)
            .sum::<usize>()
            + summary.len()
            + 200,
    );
    let mut part = |headers: String, bytes: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n").as_bytes());
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    };
    part(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            summary.len()
        ),
        summary.as_bytes(),
    );
    for a in &output.artifacts {
        let headers = format!(
            "Content-Type: {}\r\nContent-Disposition: attachment; filename=\"{}\"\r\nContent-Length: {}\r\n",
            a.content_type,
            a.name.replace(['"', '\r', '\n'], "_"),
            a.bytes.len()
        );
        part(headers, &a.bytes);
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let ct = format!("multipart/mixed; boundary={boundary}");
    let mut res = body.into_response();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        res.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    res
}

/// A random boundary that occurs in none of the parts.
fn boundary_not_in(output: &Output) -> String {
    loop {
        let state = std::collections::hash_map::RandomState::new();
        let mut h = state.build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        let b = format!(
            "weir-{:016x}{:016x}",
            h.finish(),
            state.hash_one(function_seed())
        );
        let needle = b.as_bytes();
        if !output
            .artifacts
            .iter()
            .any(|a| a.bytes.windows(needle.len()).any(|w| w == needle))
        {
            return b;
        }
    }
}

fn function_seed() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
