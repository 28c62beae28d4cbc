//! `POST /v1/functions/{name}/invoke`: admit first, then read the body, then run; or, asked
//! not to wait, take it onto the bus (`invocations.rs`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use weir_functions::{ErrorKind, FnError, HttpRequest, Input, Origin};

use super::reply;
use super::{Shared, error, fn_error};
use crate::spool;

pub async fn by_name(
    st: State<Shared>,
    Path(name): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(st, name, uri, headers, body).await
}

pub async fn handle(
    State(st): State<Shared>,
    name: String,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let query = uri.query();
    let Some(pool) = st.pools.get(&name) else {
        discard(&headers, body, DISCARD_LIMIT).await;
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no function named {name:?}"),
        );
    };
    if super::invocations::wants_async(query, &headers) {
        return super::invocations::submit(&st, &name, pool, &uri, &headers, body).await;
    }
    let form = match reply::choose(query, &headers, pool.external()) {
        Ok(f) => f,
        Err(reason) => {
            discard(&headers, body, DISCARD_LIMIT).await;
            return error(StatusCode::BAD_REQUEST, "bad_request", reason);
        }
    };
    let cfg = pool.config();
    let retry_after = cfg.retry_after.as_secs();
    // Admission comes before the body is read: a full pool never buffers a refused upload.
    let admission = match pool.try_admit() {
        Ok(a) => a,
        Err(e) => {
            discard(&headers, body, cfg.max_input).await;
            return fn_error(&e, retry_after);
        }
    };
    let limit = cfg.max_input;
    let too_large = |what: String| {
        FnError::new(
            ErrorKind::TooLarge,
            format!("the body is {what}, over this function's max_input of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return fn_error(
            &admission.refuse(too_large(format!("{n} bytes"))),
            retry_after,
        );
    }
    // The function's timeout bounds the whole invocation; `http.body_timeout` bounds any body.
    let body_deadline = cfg.timeout.min(st.bodies.timeout);
    let input = read_input(
        &st.spool_dir,
        pool.streams_input(),
        body,
        limit,
        body_deadline,
    )
    .await;
    let mut input = match input {
        Ok(input) => input,
        Err(BodyError::TooLarge) => {
            return fn_error(&admission.refuse(too_large("larger".into())), retry_after);
        }
        Err(BodyError::Read(reason)) => {
            return error(StatusCode::BAD_REQUEST, "bad_request", reason);
        }
        Err(BodyError::Disk(reason)) => {
            return fn_error(&admission.refuse(FnError::transient(reason)), retry_after);
        }
        Err(BodyError::Late) => {
            let msg = format!(
                "the request body did not arrive within {body_deadline:?} (the function's \
                 timeout or http.body_timeout, whichever is shorter)"
            );
            return fn_error(&admission.refuse(FnError::timeout(msg)), retry_after);
        }
    };
    input.content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if pool.external() {
        input.origin = Some(std::sync::Arc::new(origin(&uri, &headers)));
    }
    match admission.run(input).await {
        Ok(output) => reply::render_off_runtime(form, name, output).await,
        Err(e) => fn_error(&e, retry_after),
    }
}

/// The request as users' code is handed it (the body is the input's bytes).
fn origin(uri: &axum::http::Uri, headers: &HeaderMap) -> Origin {
    Origin::Http(HttpRequest {
        method: "POST".into(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers: forwarded(headers),
        source_ip: None,
    })
}

/// The headers a function's code may see: Weir's own bearer token is Weir's business, not the
/// handler's (nor the bus's, where an asynchronous invoke waits).
pub(crate) fn forwarded(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| *k != header::AUTHORIZATION)
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The body as the function's input, within `limit` bytes and `timeout`: spooled to a file for a
/// function that streams its input, held as bytes otherwise.
async fn read_input(
    spool_dir: &std::path::Path,
    streams: bool,
    body: Body,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<Input, BodyError> {
    let read = async {
        if streams {
            match spool::spool(body, limit, spool_dir).await {
                Ok(file) => Ok(Input::streamed(std::sync::Arc::new(file))),
                Err(spool::SpoolError::TooLarge(_)) => Err(BodyError::TooLarge),
                Err(e @ spool::SpoolError::Read(_)) => Err(BodyError::Read(e.to_string())),
                Err(e @ spool::SpoolError::Disk(_)) => Err(BodyError::Disk(e.to_string())),
            }
        } else {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            match axum::body::to_bytes(body, limit).await {
                Ok(bytes) => Ok(Input::new(bytes)),
                Err(e) if is_length_limit(&e) => Err(BodyError::TooLarge),
                Err(e) => Err(BodyError::Read(format!(
                    "could not read the request body: {e}"
                ))),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::Late))
}

/// Why a request body could not become an input.
enum BodyError {
    TooLarge,
    Read(String),
    Disk(String),
    Late,
}

/// Refusals of bodies up to this size drain them when no limit of the function applies.
const DISCARD_LIMIT: u64 = 8 << 20;

/// Reads and throws away a refused request's body, holding one chunk at a time, so that a client
/// that sends its body without waiting (no `Expect: 100-continue`) can read the refusal instead
/// of failing on a closed socket. A client that asked to wait is told at once and sends nothing.
/// Bodies over `limit`, or slower than two seconds, are cut off.
pub async fn discard(headers: &HeaderMap, body: Body, limit: u64) {
    use http_body_util::BodyExt;
    let expects = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if expects || declared.is_some_and(|n| n > limit) {
        return;
    }
    let drain = async {
        let mut body = body;
        let mut seen = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len() as u64);
            if seen > limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

pub(crate) fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}
