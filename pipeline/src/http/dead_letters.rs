//! `GET /v1/dead-letters` (`?limit=&after=`): what was given up on, newest first, with why.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, error};

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
