//! `POST /v1/events/s3` (and `HEAD`, MinIO's liveness probe): S3 / MinIO / Ceph notifications in,
//! recorded on the durable bus before the reply. `GET /v1/dead-letters`: what was given up on.

use std::sync::Arc;

use crate::metric_names as m;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics::counter;
use serde_json::json;

use super::{Shared, error};
use crate::bus::Bus;
use crate::config::S3Trigger;
use crate::events::s3_notification;
use crate::router;

/// What the event endpoints need.
pub struct EventsState {
    pub bus: Arc<dyn Bus>,
    /// Each function's S3 triggers.
    pub routes: Vec<(String, Vec<S3Trigger>)>,
}

impl EventsState {
    /// Route an accepted event and record it on the bus for every function that wants it;
    /// durable when this returns. Returns how many functions it was routed to.
    pub async fn record(&self, event: crate::events::Event) -> Result<usize, crate::bus::BusError> {
        let functions: Vec<String> = self
            .routes
            .iter()
            .filter(|(_, triggers)| triggers.iter().any(|t| router::matches(t, &event)))
            .map(|(f, _)| f.clone())
            .collect();
        self.record_to(event, functions).await
    }

    /// Record an event for the given functions (a trigger that belongs to one function, such as
    /// a bucket poller); durable when this returns.
    pub async fn record_to(
        &self,
        event: crate::events::Event,
        functions: Vec<String>,
    ) -> Result<usize, crate::bus::BusError> {
        counter!(m::EVENTS_ACCEPTED).increment(1);
        self.bus.publish(event, functions.clone()).await?;
        for f in &functions {
            counter!(m::EVENTS_ROUTED, "function" => f.clone()).increment(1);
        }
        Ok(functions.len())
    }
}

pub async fn s3_webhook(State(st): State<Shared>, body: axum::body::Body) -> Response {
    let limits = st.bodies;
    let body = match super::body::read(body, limits.max_event_body, limits.timeout).await {
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
    let mut routed = 0;
    for event in &events {
        match ev.record(event.clone()).await {
            Ok(n) => routed += n,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                );
            }
        }
    }
    Json(json!({ "accepted": events.len(), "routed": routed })).into_response()
}

pub async fn dead_letters(State(st): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let Some(ev) = &st.events else {
        return Json(json!({ "items": [] })).into_response();
    };
    let (mut limit, mut after) = (100usize, None);
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let parsed = match pair.split_once('=') {
            Some(("limit", v)) => v.parse().map(|n: usize| limit = n.clamp(1, 1000)).is_ok(),
            Some(("after", v)) => v.parse().map(|n: u64| after = Some(n)).is_ok(),
            _ => false,
        };
        if !parsed {
            let reason = format!("bad query parameter {pair:?}: use limit=N and after=ID");
            return error(StatusCode::BAD_REQUEST, "bad_request", reason);
        }
    }
    match ev.bus.dead_letters(limit, after).await {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        ),
    }
}
