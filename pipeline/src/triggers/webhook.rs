//! The notification webhook: `POST /v1/events/s3` (and `HEAD`, MinIO's liveness probe) takes
//! S3 / MinIO / Ceph notifications, within `http.max_event_body` and `http.body_timeout`, and
//! records every event through the ingress before the reply (its tests: `events_http.rs`, and
//! the parser's in `events/s3_notification_tests.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::events::s3_notification;
use crate::http::{Shared, error};

pub async fn s3_webhook(State(st): State<Shared>, body: axum::body::Body) -> Response {
    let limits = st.bodies;
    let body = match crate::http::body::read(body, limits.max_event_body, limits.timeout).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let Some(ev) = &st.events else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "no event bus is configured".into(),
        );
    };
    let events = match s3_notification::parse(&body) {
        Ok(e) => e,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", e.to_string()),
    };
    // All of a notification's records at once: the embedded bus commits them together (one
    // fsync, not one per record) and JetStream confirms them in parallel.
    let accepted = events.len();
    let recorded = futures::future::join_all(events.into_iter().map(|e| ev.record(e))).await;
    let mut routed = 0;
    for r in recorded {
        match r {
            Ok(n) => routed += n,
            Err(e) => {
                // Not recorded (the bus cannot confirm): the sender retries, as S3 and MinIO do
                // on a 503. Events already recorded are stored once however often they come.
                let mut res = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                );
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                return res;
            }
        }
    }
    Json(json!({ "accepted": accepted, "routed": routed })).into_response()
}
