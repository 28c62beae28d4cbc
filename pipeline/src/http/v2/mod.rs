//! The Open Inference Protocol v2 as Triton serves it over HTTP: health, server and model
//! metadata, model configuration and statistics, inference, and the repository API. Errors are
//! `{"error": "..."}`: 400 bad request, 404 unknown model, 429 overloaded, 503 not ready.

mod encoding;
mod infer;
mod repository;
mod triton_json;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use weir_models::{LoadedModel, RepoError, Repository};

pub use infer::Inference;

use super::Shared;

/// Routes open to inference clients (guarded by `http.inference_token` when set).
pub fn inference_routes() -> Router<Shared> {
    let mut r = Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(|| async { StatusCode::OK }))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/models/stats", get(all_stats));
    for base in [
        "/v2/models/{model}",
        "/v2/models/{model}/versions/{version}",
    ] {
        r = r
            .route(base, get(model_metadata))
            .route(&format!("{base}/ready"), get(model_ready))
            .route(&format!("{base}/config"), get(model_config))
            .route(&format!("{base}/stats"), get(model_stats))
            .route(&format!("{base}/infer"), post(infer::infer));
    }
    r
}

/// The repository API (guarded by the management token).
pub fn repository_routes() -> Router<Shared> {
    Router::new()
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{model}/load", post(repository::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(repository::unload),
        )
}

/// Triton's error body, `{"error": "..."}`, with its status.
pub struct V2Error(pub StatusCode, pub String);

impl IntoResponse for V2Error {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

pub fn v2_error(status: StatusCode, message: impl Into<String>) -> Response {
    V2Error(status, message.into()).into_response()
}

/// The status its kind says: 404 for a model the repository does not have, 503 for one that is
/// not ready or failed to load (as the `infer` and `classify` functions decide, from the same
/// kind).
pub fn repo_error(e: &RepoError) -> V2Error {
    let status =
        StatusCode::from_u16(e.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match e {
        RepoError::NotFound(name) => format!("Request for unknown model: '{name}' is not found"),
        other => other.to_string(),
    };
    V2Error(status, message)
}

fn repo(st: &Shared) -> Result<&Arc<Repository>, V2Error> {
    st.models.as_ref().ok_or_else(|| {
        V2Error(
            StatusCode::NOT_FOUND,
            "this server has no model repository (set models: in the config)".into(),
        )
    })
}

type Params = Path<HashMap<String, String>>;

/// The model a request names; one the memory budget unloaded is loaded again off the runtime.
async fn lookup(st: &Shared, p: &HashMap<String, String>) -> Result<Arc<LoadedModel>, V2Error> {
    let name = p.get("model").cloned().unwrap_or_default();
    let version = p.get("version").cloned();
    let repo = repo(st)?.clone();
    if repo.is_evicted(&name) {
        return tokio::task::spawn_blocking(move || repo.get(&name, version.as_deref()))
            .await
            .map_err(|e| V2Error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
            .map_err(|e| repo_error(&e));
    }
    repo.get(&name, version.as_deref())
        .map_err(|e| repo_error(&e))
}

async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "weir",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["model_repository", "model_configuration", "binary_tensor_data", "statistics"],
    }))
}

/// Ready when every model in the repository serves a version (or was unloaded on purpose).
async fn server_ready(State(st): State<Shared>) -> StatusCode {
    let Some(repo) = &st.models else {
        return StatusCode::OK;
    };
    let index = repo.index();
    let all = index.iter().all(|row| {
        row.state == "READY"
            || row.reason.starts_with("unloaded")
            || index
                .iter()
                .any(|r| r.name == row.name && r.state == "READY")
    });
    if all {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn model_metadata(State(st): State<Shared>, Path(p): Params) -> Response {
    let m = match lookup(&st, &p).await {
        Ok(m) => m,
        Err(r) => return r.into_response(),
    };
    let versions: Vec<String> = match p.get("version") {
        Some(v) => vec![v.clone()],
        None => {
            let mut v: Vec<u64> = repo(&st)
                .map(|r| r.ready())
                .unwrap_or_default()
                .iter()
                .filter(|x| x.name == m.name)
                .map(|x| x.version)
                .collect();
            v.sort();
            v.iter().map(u64::to_string).collect()
        }
    };
    Json(triton_json::metadata(&m, &versions)).into_response()
}

/// A readiness probe: answered from the repository's state, so polling neither reloads a model
/// the memory budget unloaded nor keeps one "recently used".
async fn model_ready(State(st): State<Shared>, Path(p): Params) -> Response {
    let servable = repo(&st).is_ok_and(|r| {
        let name = p.get("model").map_or("", String::as_str);
        r.is_servable(name, p.get("version").map(String::as_str))
    });
    if servable {
        StatusCode::OK.into_response()
    } else {
        v2_error(StatusCode::BAD_REQUEST, "Model version not ready")
    }
}

async fn model_config(State(st): State<Shared>, Path(p): Params) -> Response {
    match lookup(&st, &p).await {
        Ok(m) => Json(triton_json::config(&m)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn model_stats(State(st): State<Shared>, Path(p): Params) -> Response {
    let repo = match repo(&st) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let name = p.get("model").cloned().unwrap_or_default();
    let version = p.get("version");
    let stats: Vec<_> = repo
        .ready()
        .iter()
        .filter(|m| m.name == name && version.is_none_or(|v| *v == m.version.to_string()))
        .map(|m| m.statistics())
        .collect();
    if stats.is_empty() {
        return v2_error(
            StatusCode::BAD_REQUEST,
            format!("requested model '{name}' is not available"),
        );
    }
    Json(json!({ "model_stats": stats })).into_response()
}

async fn all_stats(State(st): State<Shared>) -> Response {
    let stats: Vec<_> = st
        .models
        .as_ref()
        .map(|r| r.ready())
        .unwrap_or_default()
        .iter()
        .map(|m| m.statistics())
        .collect();
    Json(json!({ "model_stats": stats })).into_response()
}
