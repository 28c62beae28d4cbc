//! Running an asynchronous invoke that the bus delivered: the request as the call that waits
//! would have run it (its body, content type, and for users' code the HTTP request), its
//! answer rendered in the form that call would have got.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use base64::Engine;
use weir_functions::{FnError, HttpRequest, Input, Origin};
use weir_workers::Admission;

use super::Outcome;
use crate::events::Request;
use crate::http::reply;

/// Run `r` on `admission`'s worker; `Ok` holds what the call that waits would have answered.
/// The errors are the function's own, so the consumer retries or dead-letters as for any event.
pub async fn run(
    admission: Admission,
    r: &Request,
    function: &str,
    external: bool,
) -> Result<Outcome, FnError> {
    let body = base64::engine::general_purpose::STANDARD
        .decode(&r.body)
        .map_err(|e| FnError::bad_input(format!("the carried body is not base64: {e}")))?;
    let headers = header_map(&r.headers);
    let query = Some(r.query.as_str()).filter(|q| !q.is_empty());
    let form = reply::choose(query, &headers, external).map_err(FnError::bad_input)?;
    let mut input = Input::new(body);
    input.content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if external {
        input.origin = Some(Arc::new(Origin::Http(HttpRequest {
            method: "POST".into(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.clone(),
            source_ip: None,
        })));
    }
    let output = admission.run(input).await?;
    let response = reply::render_off_runtime(form, function.to_string(), output).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| FnError::transient(format!("rendering the reply: {e}")))?;
    Ok(Outcome::Succeeded {
        status,
        content_type,
        body: body.to_vec(),
    })
}

/// The carried headers as a map; any a map cannot hold (they came through one) are skipped.
fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(k, v);
        }
    }
    map
}
