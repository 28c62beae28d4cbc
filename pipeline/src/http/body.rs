//! Reading a whole request body within a size limit and a deadline, for the routes that need it
//! in memory (the webhook): a slow or endless body is cut off, never waited on.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use http_body_util::BodyExt;

/// Limits on bodies read whole (`http.body_timeout`, `http.max_event_body`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub timeout: Duration,
    pub max_event_body: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        BodyLimits {
            timeout: Duration::from_secs(30),
            max_event_body: 8 << 20,
        }
    }
}

/// The body, or the JSON error to answer with (413 over `limit`, 408 past `timeout`).
pub async fn read(body: Body, limit: usize, timeout: Duration) -> Result<Bytes, Response> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(super::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is over the limit of {limit} bytes (http.max_event_body)"),
        )),
        Ok(Err(e)) => Err(super::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body could not be read: {e}"),
        )),
        Err(_) => Err(super::error(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            format!(
                "the body did not arrive within {}s (http.body_timeout)",
                timeout.as_secs_f64()
            ),
        )),
    }
}
