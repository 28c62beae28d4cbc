//! Content-Encoding on inference bodies, as Triton's HTTP front end takes them: what tritonclient
//! sends with `request_compression_algorithm` ("gzip", or "deflate" meaning zlib) and asks for with
//! `response_compression_algorithm` (`Accept-Encoding`). Decompression stops at the body limit, so
//! a small compressed bomb is refused, not inflated.

use std::io::{Read, Write};

use axum::http::{HeaderMap, header};
use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the request body inflates to more than {0} bytes")]
    TooLarge(usize),
    #[error("the {0} request body cannot be decompressed: {1}")]
    Bad(&'static str, String),
}

/// The request body's coding from `Content-Encoding`; an unknown one is named in the error.
pub fn request_coding(headers: &HeaderMap) -> Result<Coding, String> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    match v
        .to_str()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        other => Err(format!(
            "Content-Encoding {other:?} is not supported: use gzip, deflate or none"
        )),
    }
}

/// The coding the client accepts for the response (`Accept-Encoding`), gzip first.
pub fn response_coding(headers: &HeaderMap) -> Coding {
    let accept = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let offered = |name: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            it.next().map(str::trim) == Some(name)
                && it.all(|p| p.trim().strip_prefix("q=").is_none_or(|q| q.trim() != "0"))
        })
    };
    if offered("gzip") {
        Coding::Gzip
    } else if offered("deflate") {
        Coding::Deflate
    } else {
        Coding::Identity
    }
}

/// The body as sent, decompressed, at most `limit` bytes.
pub fn decode(coding: Coding, body: Bytes, limit: usize) -> Result<Bytes, DecodeError> {
    let reader: Box<dyn Read + '_> = match coding {
        Coding::Identity => return Ok(body),
        Coding::Gzip => Box::new(flate2::read::GzDecoder::new(&body[..])),
        Coding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Bad(coding.name(), e.to_string()))?;
    if out.len() > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out.into())
}

/// `body` compressed as `coding` (fast level: inference answers are sent once).
pub fn encode(coding: Coding, body: Vec<u8>) -> Vec<u8> {
    let level = flate2::Compression::fast();
    let written = match coding {
        Coding::Identity => return body,
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(&body).and_then(|_| e.finish())
        }
        Coding::Deflate => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(&body).and_then(|_| e.finish())
        }
    };
    // Writing to a Vec cannot fail.
    written.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn bodies_round_trip_and_bombs_stop_at_the_limit() {
        let body: Vec<u8> = (0..10_000u32).flat_map(|v| v.to_le_bytes()).collect();
        for c in [Coding::Gzip, Coding::Deflate, Coding::Identity] {
            let packed = Bytes::from(encode(c, body.clone()));
            assert_eq!(decode(c, packed, 40_000).unwrap(), body, "{c:?}");
        }
        let bomb = Bytes::from(encode(Coding::Gzip, vec![0; 1 << 20]));
        assert!(bomb.len() < 5_000);
        assert_eq!(
            decode(Coding::Gzip, bomb, 1 << 16),
            Err(DecodeError::TooLarge(1 << 16))
        );
        let e = decode(Coding::Gzip, Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert!(matches!(e, DecodeError::Bad("gzip", _)), "{e}");
    }

    #[test]
    fn codings_are_read_from_the_headers() {
        assert_eq!(request_coding(&HeaderMap::new()), Ok(Coding::Identity));
        assert_eq!(
            request_coding(&headers(header::CONTENT_ENCODING, "GZIP")),
            Ok(Coding::Gzip)
        );
        assert!(
            request_coding(&headers(header::CONTENT_ENCODING, "br"))
                .unwrap_err()
                .contains("\"br\"")
        );
        assert_eq!(
            response_coding(&headers(header::ACCEPT_ENCODING, "deflate, gzip")),
            Coding::Gzip
        );
        assert_eq!(
            response_coding(&headers(header::ACCEPT_ENCODING, "gzip;q=0, deflate")),
            Coding::Deflate
        );
        assert_eq!(
            response_coding(&headers(header::ACCEPT_ENCODING, "br")),
            Coding::Identity
        );
    }
}
