//! Request ids. S3 names every request in `x-amz-request-id` and repeats the id in an error's
//! body; it is what SDKs log and what a user quotes when asking why a request failed. s3s makes
//! none, so the endpoint's service is wrapped: each request gets an id, the response carries it,
//! an error body names it, and the request's log lines are in a span that has it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::http;
use bytes::Bytes;
use futures::future::BoxFuture;
use s3s::service::S3Service;
use s3s::{Body, HttpError};
use tracing::Instrument;

/// The S3 service with request ids.
#[derive(Clone)]
pub struct WithRequestIds {
    inner: S3Service,
    next: Arc<AtomicU64>,
}

impl WithRequestIds {
    pub fn new(inner: S3Service) -> Self {
        // Ids from different runs should not repeat: start from the clock.
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        WithRequestIds {
            inner,
            next: Arc::new(AtomicU64::new(start)),
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for WithRequestIds
where
    B: Into<Body>,
{
    type Response = http::Response<Body>;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // S3's ids are 16 upper-case hex digits.
        let id = format!("{:016X}", self.next.fetch_add(1, Ordering::Relaxed));
        let inner = self.inner.clone();
        let span = tracing::info_span!("s3", request_id = %id, method = %req.method());
        let req: http::Request<Body> = req.map(Into::into);
        Box::pin(
            async move {
                let mut res = inner.call(req).await?;
                stamp(&mut res, &id);
                Ok(res)
            }
            .instrument(span),
        )
    }
}

fn stamp(res: &mut http::Response<Body>, id: &str) {
    if let Ok(v) = http::HeaderValue::from_str(id) {
        res.headers_mut().insert("x-amz-request-id", v.clone());
        res.headers_mut().insert("x-amz-id-2", v);
    }
    if !(res.status().is_client_error() || res.status().is_server_error()) {
        return;
    }
    let Some(body) = res.body().bytes() else {
        return;
    };
    if let Some(named) = with_request_id(&body, id) {
        let len = named.len();
        *res.body_mut() = Body::from(Bytes::from(named));
        res.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
}

/// An S3 error document with `<RequestId>` added before `</Error>`; `None` when the body is not
/// one or already names an id.
fn with_request_id(body: &[u8], id: &str) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") {
        return None;
    }
    let at = text.rfind("</Error>")?;
    Some(format!("{}<RequestId>{id}</RequestId>{}", &text[..at], &text[at..]).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_document_gets_the_id_once() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code></Error>"#;
        let named = String::from_utf8(with_request_id(doc, "00AB").unwrap()).unwrap();
        assert!(
            named.ends_with("<Code>NoSuchKey</Code><RequestId>00AB</RequestId></Error>"),
            "{named}"
        );
        assert_eq!(with_request_id(named.as_bytes(), "00AB"), None);
        assert_eq!(with_request_id(b"", "00AB"), None);
        assert_eq!(with_request_id(b"not xml", "00AB"), None);
    }
}
