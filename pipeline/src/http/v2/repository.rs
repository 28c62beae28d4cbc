//! `POST /v2/repository/index`, `.../models/{m}/load` and `.../unload`. Loading reads the model
//! folder again (a new version or config takes effect); a failed reload keeps what was serving.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::{Shared, V2Error, repo, repo_error, v2_error};

pub async fn index(State(st): State<Shared>) -> Response {
    match repo(&st) {
        Ok(r) => Json(r.index()).into_response(),
        Err(res) => res.into_response(),
    }
}

/// The body's `parameters`, if any; an empty body is allowed (the Python client sends one).
fn parameters(body: &[u8]) -> Result<Map<String, Value>, V2Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        V2Error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    Ok(v.get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default())
}

pub async fn load(State(st): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let repo = match repo(&st) {
        Ok(r) => r.clone(),
        Err(res) => return res.into_response(),
    };
    let params = match parameters(&body) {
        Ok(p) => p,
        Err(res) => return res.into_response(),
    };
    if let Some(key) = params
        .keys()
        .find(|k| *k == "config" || k.starts_with("file:"))
    {
        return v2_error(
            StatusCode::BAD_REQUEST,
            format!(
                "load parameter '{key}' is not supported: place the files in the repository folder"
            ),
        );
    }
    match tokio::task::spawn_blocking(move || repo.load(&name)).await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        Ok(Err(e)) => repo_error(&e).into_response(),
        Err(e) => v2_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("loading failed: {e}"),
        ),
    }
}

pub async fn unload(State(st): State<Shared>, Path(name): Path<String>, body: Bytes) -> Response {
    let repo = match repo(&st) {
        Ok(r) => r,
        Err(res) => return res.into_response(),
    };
    if let Err(res) = parameters(&body) {
        return res.into_response();
    }
    match repo.unload(&name) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => repo_error(&e).into_response(),
    }
}
