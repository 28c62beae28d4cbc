//! GET and HEAD of an object: the conditions (If-Match and the rest), a range or a part, and
//! one list of the reply's fields for both, since s3s gives the two replies no common type.

use std::ops::Range as Span;

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::objects::{Sums, etag, sums};
use super::{Endpoint, key_ok, timestamp};
use crate::store::{Checksums, ObjectHeaders, ObjectMeta};

/// What GET and HEAD answer alike, worked out once.
struct Reading {
    /// The bytes answered: a part, a range, or `None` for all.
    span: Option<Span<u64>>,
    len: u64,
    sums: Sums,
    headers: ObjectHeaders,
}

impl Reading {
    /// Checks the conditions and the range or part. Checksums are given only when asked for;
    /// GET gives them only with the whole object, since they describe all of it.
    fn of(meta: &ObjectMeta, ask: Ask<'_>) -> S3Result<Reading> {
        preconditions(
            meta,
            ask.if_match,
            ask.if_unmodified_since,
            ask.if_none_match,
            ask.if_modified_since,
        )?;
        let span = span(meta, ask.part_number, ask.range)?;
        let len = span.as_ref().map_or(meta.size, |r| r.end - r.start);
        let wanted = ask
            .checksum_mode
            .is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
        let given = wanted && (span.is_none() || !ask.whole_only);
        let sums = sums(&if given {
            meta.checksums.clone()
        } else {
            Checksums::default()
        });
        Ok(Reading {
            span,
            len,
            sums,
            headers: meta.headers.clone(),
        })
    }
}

/// The request's fields that decide a reading.
struct Ask<'a> {
    if_match: Option<&'a ETagCondition>,
    if_unmodified_since: Option<&'a Timestamp>,
    if_none_match: Option<&'a ETagCondition>,
    if_modified_since: Option<&'a Timestamp>,
    part_number: Option<i32>,
    range: Option<&'a Range>,
    checksum_mode: Option<&'a ChecksumMode>,
    /// GET gives checksums only with the whole object; HEAD with any.
    whole_only: bool,
}

/// An `Ask` from a GetObjectInput or a HeadObjectInput, which name these fields alike.
macro_rules! ask {
    ($i:expr, $whole_only:expr) => {
        Ask {
            if_match: $i.if_match.as_ref(),
            if_unmodified_since: $i.if_unmodified_since.as_ref(),
            if_none_match: $i.if_none_match.as_ref(),
            if_modified_since: $i.if_modified_since.as_ref(),
            part_number: $i.part_number,
            range: $i.range.as_ref(),
            checksum_mode: $i.checksum_mode.as_ref(),
            whole_only: $whole_only,
        }
    };
}

/// The fields GetObjectOutput and HeadObjectOutput share, filled from a `Reading`.
macro_rules! object_reply {
    ($out:ident, $meta:expr, $r:expr, $part_number:expr $(, $field:ident : $value:expr)*) => {{
        let meta = $meta;
        let Reading { span, len, sums: s, headers: h } = $r;
        $out {
            content_length: Some(len as i64),
            content_range: span
                .map(|x| format!("bytes {}-{}/{}", x.start, x.end.max(1) - 1, meta.size)),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(meta.modified_ms)),
            e_tag: Some(etag(meta)),
            parts_count: $part_number.map(|_| meta.parts_count() as i32),
            metadata: (!h.metadata.is_empty()).then(|| h.metadata.into_iter().collect()),
            content_type: h.content_type,
            content_encoding: h.content_encoding,
            content_disposition: h.content_disposition,
            content_language: h.content_language,
            cache_control: h.cache_control,
            checksum_crc32: s.crc32,
            checksum_crc32c: s.crc32c,
            checksum_sha1: s.sha1,
            checksum_sha256: s.sha256,
            checksum_crc64nvme: s.crc64nvme,
            checksum_type: s.kind,
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

impl Endpoint {
    pub(super) async fn get_object_impl(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let (meta, file) = self.blocking(move |s| s.open_blob(&b, &k)).await?;
        let r = Reading::of(&meta, ask!(i, true))?;
        let start = r.span.as_ref().map_or(0, |x| x.start);
        let mut file = tokio::fs::File::from_std(file);
        if start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| s3_error!(InternalError, "cannot read the object: {e}"))?;
        }
        use tokio::io::AsyncReadExt;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(r.len), 64 * 1024);
        Ok(S3Response::new(object_reply!(
            GetObjectOutput,
            &meta,
            r,
            i.part_number,
            body: Some(StreamingBlob::wrap(stream))
        )))
    }

    pub(super) async fn head_object_impl(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let meta = self.blocking(move |s| s.head(&b, &k)).await?;
        let r = Reading::of(&meta, ask!(i, false))?;
        Ok(S3Response::new(object_reply!(
            HeadObjectOutput,
            &meta,
            r,
            i.part_number
        )))
    }
}

fn condition_matches(c: &ETagCondition, meta: &ObjectMeta) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == meta.etag,
    }
}

/// RFC 9110's order, as S3 applies it: If-Match, else If-Unmodified-Since (412); then
/// If-None-Match, else If-Modified-Since (304). Dates compare at whole seconds.
fn preconditions(
    meta: &ObjectMeta,
    if_match: Option<&ETagCondition>,
    if_unmodified_since: Option<&Timestamp>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let secs = |t: &Timestamp| time::OffsetDateTime::from(t.clone()).unix_timestamp();
    let modified = (meta.modified_ms / 1000) as i64;
    match (if_match, if_unmodified_since) {
        (Some(c), _) if !condition_matches(c, meta) => {
            return Err(s3_error!(PreconditionFailed, "If-Match: the ETag differs"));
        }
        (None, Some(t)) if modified > secs(t) => {
            return Err(s3_error!(
                PreconditionFailed,
                "modified since If-Unmodified-Since"
            ));
        }
        _ => {}
    }
    match (if_none_match, if_modified_since) {
        (Some(c), _) if condition_matches(c, meta) => Err(s3_error!(NotModified)),
        (None, Some(t)) if modified <= secs(t) => Err(s3_error!(NotModified)),
        _ => Ok(()),
    }
}

/// The bytes a GET or HEAD answers with: a part, a range, or all.
fn span(
    meta: &ObjectMeta,
    part: Option<i32>,
    range: Option<&Range>,
) -> S3Result<Option<Span<u64>>> {
    if let Some(n) = part {
        if range.is_some() {
            return Err(s3_error!(
                InvalidRequest,
                "ask for a range or a part, not both"
            ));
        }
        let r = u32::try_from(n)
            .ok()
            .and_then(|n| meta.part_range(n))
            .ok_or_else(|| {
                let mut e = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
                    format!("the object has {} part(s)", meta.parts_count()),
                );
                e.set_status_code(hyper::StatusCode::RANGE_NOT_SATISFIABLE);
                e
            })?;
        return Ok(Some(r));
    }
    match range {
        Some(r) => Ok(Some(r.check(meta.size)?)),
        None => Ok(None),
    }
}
