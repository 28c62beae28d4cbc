//! `GET /healthz/ready`: whether this node can take work, for a readiness probe. The bus must
//! answer (`Bus::ready`), and the object store (one listing of a bucket the functions use); either
//! failing is 503 with which and why. `/healthz` stays the liveness answer: the process serves.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Shared;
use crate::store::{ObjectStore, PageRequest};

/// What readiness looks at besides the bus.
pub struct Readiness {
    pub store: Arc<dyn ObjectStore>,
    /// A bucket the functions read or write; none when no function uses the store.
    pub bucket: Option<String>,
}

pub async fn ready(State(st): State<Shared>) -> Response {
    let bus = match &st.events {
        Some(ev) => ev.bus.ready().await.map_err(|e| e.to_string()),
        None => Ok(()),
    };
    let store = match &st.readiness.bucket {
        Some(b) => {
            let probe = PageRequest {
                max: 1,
                ..PageRequest::default()
            };
            st.readiness
                .store
                .list(b, &probe)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    let say = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let body = json!({
        "status": if bus.is_ok() && store.is_ok() { "ready" } else { "not_ready" },
        "bus": say(&bus),
        "store": say(&store),
    });
    let status = if bus.is_ok() && store.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
