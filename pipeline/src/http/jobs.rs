//! Reprocess jobs over HTTP: `POST /v1/jobs` (a `JobSpec` as JSON) answers 201 with the job and
//! its `Location`; `GET /v1/jobs` lists them, newest first; `GET /v1/jobs/{id}` shows one;
//! `DELETE /v1/jobs/{id}` cancels it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Shared, error};
use crate::jobs::{JobError, JobSpec};

/// A job's spec is a few hundred bytes; anything near this is not one.
const MAX_SPEC: usize = 64 * 1024;

fn job_error(e: &JobError) -> Response {
    let (status, kind) = e.status();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, kind, e.to_string())
}

fn no_jobs() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "reprocess jobs are not running on this server".into(),
    )
}

pub async fn submit(State(st): State<Shared>, body: Bytes) -> Response {
    let Some(jobs) = &st.jobs else {
        return no_jobs();
    };
    if body.len() > MAX_SPEC {
        let reason = format!("a job's spec is at most {MAX_SPEC} bytes");
        return error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", reason);
    }
    let spec: JobSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            let reason = format!(
                "the body must be a job as JSON ({{\"function\", \"bucket\", \"prefix\", \
                 \"since\", \"rate\", \"force\", \"dry_run\"}}): {e}"
            );
            return error(StatusCode::BAD_REQUEST, "bad_request", reason);
        }
    };
    match jobs.submit(spec).await {
        Ok(job) => {
            let mut res = (StatusCode::CREATED, Json(json!(job))).into_response();
            if let Ok(at) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
                res.headers_mut().insert(header::LOCATION, at);
            }
            res
        }
        Err(e) => job_error(&e),
    }
}

pub async fn list(State(st): State<Shared>) -> Response {
    let Some(jobs) = &st.jobs else {
        return Json(json!({ "jobs": [] })).into_response();
    };
    match jobs.list().await {
        Ok(all) => Json(json!({ "jobs": all })).into_response(),
        Err(e) => job_error(&e),
    }
}

pub async fn show(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(jobs) = &st.jobs else {
        return no_jobs();
    };
    match jobs.get(&id).await {
        Ok(job) => Json(json!(job)).into_response(),
        Err(e) => job_error(&e),
    }
}

pub async fn cancel(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let Some(jobs) = &st.jobs else {
        return no_jobs();
    };
    match jobs.cancel(&id).await {
        Ok(job) => Json(json!(job)).into_response(),
        Err(e) => job_error(&e),
    }
}
