//! Asynchronous invokes: `POST /v1/functions/{name}/invoke` (or a trigger's path) with
//! `Prefer: respond-async` or `?async=true` answers `202` with an id and a `Location` once the
//! request is durable on the bus, in the function's `~async` lane; `GET /v1/invocations/{id}`
//! says where it stands and, once done, what the call that waits would have answered.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use weir_functions::{ErrorKind, FnError};
use weir_workers::Pool;

use super::{Shared, error, fn_error};
use crate::bus::async_lane;
use crate::events::{Event, ObjectRef, Request, stable_id};
use crate::invocations::{Results, Status};

/// The results store and the bounds on what is accepted.
pub struct Asynchronous {
    pub results: Results,
    /// The largest body taken (it rides on the bus).
    pub max_body: u64,
    /// Accepted and unfinished per function; more get 429.
    pub max_queued: u64,
    /// Bodies being received at once (`RECEIVING`), so memory holds at most that many.
    pub receiving: tokio::sync::Semaphore,
}

/// Asynchronous bodies received at once, over every function; more get 429.
pub const RECEIVING: usize = 64;

/// Whether the caller asked not to wait: RFC 7240's `Prefer: respond-async`, or `?async=true`.
pub fn wants_async(query: Option<&str>, headers: &HeaderMap) -> bool {
    let by_query = query.unwrap_or("").split('&').any(|p| p == "async=true");
    let by_header = headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
    });
    by_query || by_header
}

/// Take the request onto the bus and answer 202, or say why not.
pub async fn submit(
    st: &Shared,
    name: &str,
    pool: &Pool,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let (Some(a), Some(events)) = (&st.asynchronous, &st.events) else {
        let why = "asynchronous invokes are not served here".to_string();
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why);
    };
    let retry_after = pool.config().retry_after.as_secs();
    // The reply's form is checked now, not when it has already run.
    if let Err(reason) = super::reply::choose(uri.query(), headers, pool.external()) {
        super::invoke::discard(headers, body, a.max_body).await;
        return error(StatusCode::BAD_REQUEST, "bad_request", reason);
    }
    let Ok(_receiving) = a.receiving.try_acquire() else {
        super::invoke::discard(headers, body, a.max_body).await;
        let why = format!("{RECEIVING} asynchronous invocations are being received already");
        return fn_error(&FnError::new(ErrorKind::Overloaded, why), retry_after);
    };
    let lane = async_lane(name);
    // Those being received count too, so a burst cannot pass the bound together.
    let receiving = (RECEIVING - a.receiving.available_permits()) as u64;
    match events.bus.pending(&lane).await {
        Ok(n) if n + receiving > a.max_queued => {
            super::invoke::discard(headers, body, a.max_body).await;
            let why = format!(
                "{n} asynchronous invocations of {name} wait already (invocations.max_queued)"
            );
            return fn_error(&FnError::new(ErrorKind::Overloaded, why), retry_after);
        }
        Ok(_) => {}
        Err(e) => {
            let why = format!("the bus: {e}");
            return fn_error(&FnError::new(ErrorKind::Unavailable, why), retry_after);
        }
    }
    let limit = a.max_body.min(pool.config().max_input);
    let read = axum::body::to_bytes(body, usize::try_from(limit).unwrap_or(usize::MAX));
    let bytes = match tokio::time::timeout(st.bodies.timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) if super::invoke::is_length_limit(&e) => {
            let why = format!(
                "the body is larger than {limit} bytes, the most an asynchronous invoke of {name} takes (invocations.max_body, max_input)"
            );
            return fn_error(&FnError::new(ErrorKind::TooLarge, why), retry_after);
        }
        Ok(Err(e)) => {
            let why = format!("could not read the request body: {e}");
            return error(StatusCode::BAD_REQUEST, "bad_request", why);
        }
        Err(_) => {
            let why = format!(
                "the request body did not arrive within {:?} (http.body_timeout)",
                st.bodies.timeout
            );
            return error(StatusCode::REQUEST_TIMEOUT, "timeout", why);
        }
    };
    let id = new_id(name);
    let request = Request {
        invocation: id.clone(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: super::invoke::forwarded(headers),
        body: base64::engine::general_purpose::STANDARD.encode(&bytes),
    };
    let event = Event {
        id: id.clone(),
        source: "weir:invoke".into(),
        time: crate::events::now(),
        name: "weir:Invoke".into(),
        object: ObjectRef {
            bucket: String::new(),
            key: id.clone(),
            size: Some(bytes.len() as u64),
            etag: None,
            version: None,
        },
        payload: None,
        request: Some(Box::new(request)),
    };
    if let Err(e) = events.bus.publish(event, vec![lane]).await {
        let why = format!("the bus did not take the invocation: {e}");
        return fn_error(&FnError::new(ErrorKind::Unavailable, why), retry_after);
    }
    // Durable on the bus: it runs whatever happens next. A record that cannot be written now
    // is written when it ends.
    if let Err(e) = a.results.queued(&id, name).await {
        tracing::error!(function = %name, invocation = %id, error = %e, "cannot record a queued invocation");
    }
    let location = format!("/v1/invocations/{id}");
    let mut res = (
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "function": name, "status": "queued", "location": location })),
    )
        .into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        "preference-applied",
        HeaderValue::from_static("respond-async"),
    );
    res
}

/// A fresh id: the function, the time and a counter, hashed (16 hex digits).
fn new_id(function: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let pid = std::process::id();
    stable_id(&[
        function,
        &nanos.to_string(),
        &n.to_string(),
        &pid.to_string(),
    ])
}

/// `GET /v1/invocations/{id}`: `queued`, `succeeded` with the reply (a JSON reply inline as
/// `body`, any other as `body_base64`), or `failed` with the error's kind and reason.
pub async fn show(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(a) = &st.asynchronous else {
        let why = "asynchronous invokes are not served here".to_string();
        return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why);
    };
    let (record, body) = match a.results.get(&id).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            let why = format!("no invocation {id:?}: unknown here, or its result has expired");
            return error(StatusCode::NOT_FOUND, "not_found", why);
        }
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            );
        }
    };
    let stamp = |ms: u64| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        humantime::format_rfc3339_millis(t).to_string()
    };
    let mut doc = json!({
        "id": record.id,
        "function": record.function,
        "status": record.status,
        "submitted": stamp(record.submitted_ms),
    });
    if let Some(at) = record.finished_ms {
        doc["finished"] = json!(stamp(at));
    }
    match record.status {
        Status::Succeeded => {
            let content_type = record.content_type.unwrap_or_default();
            let mut result = json!({ "status": record.reply_status, "content_type": content_type });
            let parsed = content_type
                .starts_with("application/json")
                .then(|| serde_json::from_slice::<Value>(&body).ok())
                .flatten();
            match parsed {
                Some(v) => result["body"] = v,
                None => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
                    result["body_base64"] = json!(encoded);
                }
            }
            doc["result"] = result;
        }
        Status::Failed => {
            let (kind, reason) = record.error.unwrap_or_default();
            doc["error"] = json!({ "kind": kind, "reason": reason });
        }
        Status::Queued => {}
    }
    Json(doc).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_is_asked_by_header_or_query() {
        let mut h = HeaderMap::new();
        assert!(!wants_async(None, &h));
        assert!(wants_async(Some("return=first&async=true"), &h));
        assert!(!wants_async(Some("async=false"), &h));
        h.insert("prefer", HeaderValue::from_static("wait=10, respond-async"));
        assert!(wants_async(None, &h));
        h.insert("prefer", HeaderValue::from_static("return=minimal"));
        assert!(!wants_async(None, &h));
    }
}
