//! The bearer token that guards invocation and management (DESIGN.md, "Tokens").

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::{Shared, error};

pub async fn require_token(State(st): State<Shared>, req: Request, next: Next) -> Response {
    check(st.token.as_deref(), req, next).await
}

/// The Open Inference endpoints' own token: Triton's clients send none unless told to.
pub async fn require_inference_token(
    State(st): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    check(st.inference_token.as_deref(), req, next).await
}

async fn check(token: Option<&str>, req: Request, next: Next) -> Response {
    let Some(token) = token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.as_bytes(), token.as_bytes()) => next.run(req).await,
        _ => {
            let (parts, body) = req.into_parts();
            super::invoke::discard(&parts.headers, body, 1 << 20).await;
            let mut res = error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs the header Authorization: Bearer <token>".into(),
            );
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            res
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_whole_tokens() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
    }
}
