//! The HTTP API: function invocation, the function list, health and metrics.

mod auth;
pub mod body;
mod dead_letters;
pub mod invocations;
pub(crate) mod invoke;
mod jobs;
pub mod ready;
pub mod reply;
mod serve;
pub mod v2;

pub use serve::{Limits, serve};

use std::collections::HashMap;
use std::sync::Arc;

use crate::metric_names as m;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use weir_functions::FnError;
use weir_workers::Pool;

/// What every handler can see.
pub struct AppState {
    pub pools: HashMap<String, Pool>,
    /// One JSON description per function, for `GET /v1/functions`.
    pub listing: Vec<serde_json::Value>,
    pub token: Option<String>,
    pub prometheus: PrometheusHandle,
    /// The bus and routes, when storage events are on.
    pub events: Option<Arc<crate::triggers::Ingress>>,
    /// Reprocess jobs.
    pub jobs: Option<Arc<crate::jobs::Jobs>>,
    /// Asynchronous invokes: where their results are kept, and their bounds.
    pub asynchronous: Option<invocations::Asynchronous>,
    /// The model repository, when the config names one.
    pub models: Option<Arc<weir_models::Repository>>,
    /// Guards the Open Inference endpoints when set (`http.inference_token`).
    pub inference_token: Option<String>,
    pub inference: v2::Inference,
    /// Where request bodies of streaming functions are spooled (`<data>/tmp`).
    pub spool_dir: std::path::PathBuf,
    /// Deadlines and sizes of bodies read whole.
    pub bodies: body::BodyLimits,
    /// What `/healthz/ready` checks.
    pub readiness: ready::Readiness,
}

pub type Shared = Arc<AppState>;

/// `extra_routes`: (path, function) pairs from `http` triggers.
pub fn router(state: Shared, extra_routes: &[(String, String)]) -> Router {
    let mut guarded = Router::new()
        .route("/v1/functions", get(list_functions))
        .route("/v1/functions/{name}/invoke", post(invoke::by_name))
        .route(
            "/v1/events/s3",
            post(crate::triggers::webhook::s3_webhook).head(|| async { StatusCode::OK }),
        )
        .route(
            "/v1/dead-letters",
            get(dead_letters::list).delete(dead_letters::purge),
        )
        .route("/v1/dead-letters/retry", post(dead_letters::retry_all))
        .route(
            "/v1/dead-letters/{id}",
            get(dead_letters::show).delete(dead_letters::remove_one),
        )
        .route("/v1/dead-letters/{id}/retry", post(dead_letters::retry_one))
        .route("/v1/invocations/{id}", get(invocations::show))
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::show).delete(jobs::cancel))
        .merge(v2::repository_routes());
    for (path, function) in extra_routes {
        let function = function.clone();
        guarded = guarded.route(
            path,
            post(move |st: State<Shared>, q, h, body| {
                invoke::handle(st, function.clone(), q, h, body)
            }),
        );
    }
    guarded
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .merge(v2::inference_routes().layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_inference_token,
        )))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/healthz/ready", get(ready::ready))
        .route("/metrics", get(render_metrics))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .layer(middleware::from_fn(count_responses))
        .with_state(state)
}

/// Each function with this node's load and, when it takes storage events, what waits for it on
/// the bus (with JetStream: on every node's behalf).
async fn list_functions(State(st): State<Shared>) -> Json<serde_json::Value> {
    let mut functions = Vec::with_capacity(st.listing.len());
    for f in &st.listing {
        let mut f = f.clone();
        let name = f["name"].as_str().unwrap_or_default().to_string();
        if let Some(pool) = st.pools.get(&name) {
            let s = pool.stats();
            f["stats"] = json!({ "in_flight": s.in_flight, "peak_in_flight": s.peak_in_flight, "capacity": s.capacity });
            // Worker processes, a loaded model: warm while working, idle while up and waiting,
            // cold when none is up (the next call starts one).
            if let Some(i) = pool.instances() {
                let state = match (i.all, s.in_flight) {
                    (0, _) => "cold",
                    (_, 0) => "idle",
                    _ => "warm",
                };
                f["instances"] = json!({ "state": state, "idle": i.idle, "all": i.all });
            }
        }
        let storage = st
            .events
            .as_ref()
            .filter(|ev| ev.routes.iter().any(|(n, _)| *n == name));
        let count = |n: Result<u64, crate::bus::BusError>| match n {
            Ok(n) => json!(n),
            Err(e) => json!({ "error": e.to_string() }),
        };
        if let Some(ev) = storage {
            f["bus_pending"] = count(ev.bus.pending(&name).await);
        }
        // Asynchronous invokes waiting (every function takes them).
        if let (Some(ev), true) = (&st.events, st.pools.contains_key(&name)) {
            let lane = crate::bus::async_lane(&name);
            f["async_pending"] = count(ev.bus.pending(&lane).await);
        }
        functions.push(f);
    }
    Json(json!({ "functions": functions }))
}

async fn render_metrics(State(st): State<Shared>) -> Response {
    let mut res = st.prometheus.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}

async fn count_responses(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let res = next.run(req).await;
    metrics::counter!(m::HTTP_RESPONSES, "route" => route, "status" => res.status().as_u16().to_string())
        .increment(1);
    res
}

/// `{"error": reason, "kind": label}` with a status.
pub fn error(status: StatusCode, kind: &str, reason: String) -> Response {
    (status, Json(json!({ "error": reason, "kind": kind }))).into_response()
}

/// A function or pool error as a response: its kind sets the status; refusals say when to retry.
pub fn fn_error(e: &FnError, retry_after_secs: u64) -> Response {
    let status =
        StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = error(status, e.kind().label(), e.reason().to_string());
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs.max(1)),
        );
    }
    res
}
