//! Receiving a body into a blob: written to a fresh file while its MD5 and the checksums the
//! client named are computed, each read under the body deadline, then checked against what the
//! client declared (Content-MD5, `x-amz-checksum-*` headers or trailers) before anything is
//! committed. A body that fails any check never becomes visible.

use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumAlgorithm, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, S3Result, TrailingHeaders, s3_error};
use tokio::io::AsyncWriteExt;

use crate::store::{Checksums, LocalStore, Written, hex};

/// What the client declared about the body.
pub struct Declared {
    pub content_md5: Option<String>,
    pub checksum: Checksum,
    pub algorithm: Option<ChecksumAlgorithm>,
}

/// S3's largest single PUT (and part).
/// The digests a request declares, from a PutObjectInput or an UploadPartInput (which name
/// them alike but share no type).
macro_rules! declared {
    ($i:expr) => {
        $crate::s3_endpoint::body::Declared {
            content_md5: $i.content_md5.clone(),
            checksum: s3s::dto::Checksum {
                checksum_crc32: $i.checksum_crc32.clone(),
                checksum_crc32c: $i.checksum_crc32c.clone(),
                checksum_sha1: $i.checksum_sha1.clone(),
                checksum_sha256: $i.checksum_sha256.clone(),
                checksum_crc64nvme: $i.checksum_crc64nvme.clone(),
                ..Default::default()
            },
            algorithm: $i.checksum_algorithm.clone(),
        }
    };
}
pub(super) use declared;

pub const MAX_BODY: u64 = 5 * 1024 * 1024 * 1024;

pub async fn receive(
    store: &LocalStore,
    body: Option<StreamingBlob>,
    declared: Declared,
    trailers: Option<TrailingHeaders>,
    timeout: Duration,
) -> S3Result<Written> {
    use s3s::crypto::Checksum as _;
    let mut hasher = hasher_for(&declared)?;
    let blob = store.incoming();
    let mut file = tokio::fs::File::create(&blob.path)
        .await
        .map_err(internal)?;
    let mut md5 = s3s::crypto::Md5::new();
    let mut size = 0u64;
    let deadline = tokio::time::Instant::now() + timeout;
    if let Some(mut body) = body {
        loop {
            let next = match tokio::time::timeout_at(deadline, body.next()).await {
                Ok(next) => next,
                Err(_) => {
                    return Err(s3_error!(
                        RequestTimeout,
                        "the body did not arrive within {}s; send it again",
                        timeout.as_secs()
                    ));
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(body_error)?;
            size += chunk.len() as u64;
            if size > MAX_BODY {
                return Err(s3_error!(EntityTooLarge, "a body has at most 5 GiB"));
            }
            md5.update(&chunk);
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(internal)?;
        }
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let md5 = md5.finalize();
    if let Some(want) = &declared.content_md5 {
        let want = base64::engine::general_purpose::STANDARD
            .decode(want.trim())
            .ok()
            .filter(|d| d.len() == 16)
            .ok_or_else(|| s3_error!(InvalidDigest, "the Content-MD5 is not a base64 MD5"))?;
        if want != md5 {
            return Err(s3_error!(
                BadDigest,
                "the Content-MD5 does not match the body's MD5"
            ));
        }
    }
    let got = hasher.finalize();
    let mut want = declared.checksum;
    if let Some(t) = trailers.and_then(|t| t.take()) {
        let field = |name: &str| {
            t.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        want.checksum_crc32 = want.checksum_crc32.or(field("x-amz-checksum-crc32"));
        want.checksum_crc32c = want.checksum_crc32c.or(field("x-amz-checksum-crc32c"));
        want.checksum_sha1 = want.checksum_sha1.or(field("x-amz-checksum-sha1"));
        want.checksum_sha256 = want.checksum_sha256.or(field("x-amz-checksum-sha256"));
        want.checksum_crc64nvme = want
            .checksum_crc64nvme
            .or(field("x-amz-checksum-crc64nvme"));
    }
    for (name, w, g) in [
        ("CRC32", &want.checksum_crc32, &got.checksum_crc32),
        ("CRC32C", &want.checksum_crc32c, &got.checksum_crc32c),
        ("SHA1", &want.checksum_sha1, &got.checksum_sha1),
        ("SHA256", &want.checksum_sha256, &got.checksum_sha256),
        (
            "CRC64NVME",
            &want.checksum_crc64nvme,
            &got.checksum_crc64nvme,
        ),
    ] {
        if let Some(w) = w
            && Some(w) != g.as_ref()
        {
            return Err(s3_error!(
                BadDigest,
                "the {name} checksum you specified did not match the body's"
            ));
        }
    }
    Ok(Written {
        blob,
        size,
        md5_hex: hex(md5),
        checksums: to_checksums(got),
    })
}

/// One hasher for each checksum the client sent or named.
fn hasher_for(d: &Declared) -> S3Result<ChecksumHasher> {
    let mut h = ChecksumHasher::default();
    let c = &d.checksum;
    let named = d
        .algorithm
        .as_ref()
        .map(|a| a.as_str().to_ascii_uppercase());
    let wants = |field: bool, name: &str| field || named.as_deref() == Some(name);
    if wants(c.checksum_crc32.is_some(), "CRC32") {
        h.crc32 = Some(Default::default());
    }
    if wants(c.checksum_crc32c.is_some(), "CRC32C") {
        h.crc32c = Some(Default::default());
    }
    if wants(c.checksum_sha1.is_some(), "SHA1") {
        h.sha1 = Some(Default::default());
    }
    if wants(c.checksum_sha256.is_some(), "SHA256") {
        h.sha256 = Some(Default::default());
    }
    if wants(c.checksum_crc64nvme.is_some(), "CRC64NVME") {
        h.crc64nvme = Some(Default::default());
    }
    if let Some(n) = &named
        && !["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"].contains(&n.as_str())
    {
        return Err(s3_error!(InvalidRequest, "unknown checksum algorithm {n}"));
    }
    Ok(h)
}

pub fn to_checksums(c: Checksum) -> Checksums {
    Checksums {
        crc32: c.checksum_crc32,
        crc32c: c.checksum_crc32c,
        sha1: c.checksum_sha1,
        sha256: c.checksum_sha256,
        crc64nvme: c.checksum_crc64nvme,
        composite: false,
    }
}

/// A body that failed while it was read: the signed payload hash or a chunk signature not
/// matching is the client's fault, as is a body shorter than declared.
fn body_error(e: s3s::StdError) -> S3Error {
    // s3s's stream errors are not public types; their texts name the failure.
    let text = e.to_string();
    if text.contains("Sha256Mismatch") {
        return S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "the body's SHA-256 does not match x-amz-content-sha256",
        )
        .with_status();
    }
    if text.contains("SignatureMismatch") {
        return s3_error!(
            SignatureDoesNotMatch,
            "a chunk's signature does not match the request's"
        );
    }
    s3_error!(IncompleteBody, "the body could not be read: {text}")
}

trait WithStatus {
    fn with_status(self) -> Self;
}

impl WithStatus for S3Error {
    fn with_status(mut self) -> Self {
        self.set_status_code(hyper::StatusCode::BAD_REQUEST);
        self
    }
}

fn internal(e: std::io::Error) -> S3Error {
    tracing::error!(error = %e, "cannot write an incoming body");
    s3_error!(InternalError, "the body could not be stored: {e}")
}
