//! Objects: PUT (verified, then committed atomically), GET and HEAD (conditional, ranged, by
//! part), COPY and multi-object DELETE.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::body::{Declared, receive};
use super::{Endpoint, key_ok, timestamp};
use crate::store::{Checksums, ObjectHeaders, ObjectMeta, PutCondition, Written};

/// The headers a client sets on an object, as stored.
pub(super) fn headers(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    metadata: Option<Metadata>,
) -> ObjectHeaders {
    ObjectHeaders {
        content_type,
        content_encoding,
        content_disposition,
        content_language,
        cache_control,
        metadata: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
    }
}

fn etag(meta: &ObjectMeta) -> ETag {
    ETag::Strong(meta.etag.clone())
}

/// The checksum fields of a reply: the stored ones, with their type.
pub(super) struct Sums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
    pub kind: Option<ChecksumType>,
}

pub(super) fn sums(c: &Checksums) -> Sums {
    let kind = (!c.is_empty()).then(|| {
        ChecksumType::from_static(if c.composite {
            ChecksumType::COMPOSITE
        } else {
            ChecksumType::FULL_OBJECT
        })
    });
    Sums {
        crc32: c.crc32.clone(),
        crc32c: c.crc32c.clone(),
        sha1: c.sha1.clone(),
        sha256: c.sha256.clone(),
        crc64nvme: c.crc64nvme.clone(),
        kind,
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
pub(super) fn preconditions(
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
) -> S3Result<Option<std::ops::Range<u64>>> {
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

impl Endpoint {
    pub(super) async fn put_object_impl(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let trailers = req.trailing_headers;
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        if let Some(c) = &i.storage_class
            && !["STANDARD", "REDUCED_REDUNDANCY"].contains(&c.as_str())
        {
            return Err(s3_error!(InvalidStorageClass));
        }
        if i.content_length
            .is_some_and(|n| n as u64 > super::body::MAX_BODY)
        {
            return Err(s3_error!(EntityTooLarge, "a single PUT has at most 5 GiB"));
        }
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        let b = bucket.clone();
        if !self.blocking(move |s| s.bucket_exists(&b)).await? {
            return Err(s3_error!(NoSuchBucket));
        }
        let cond = PutCondition {
            if_none_match_any: i.if_none_match.as_ref().is_some_and(|c| c.is_any()),
            if_match: i.if_match.as_ref().map(|c| match c {
                ETagCondition::Any => "*".to_string(),
                ETagCondition::ETag(e) => e.value().to_string(),
            }),
        };
        let declared = Declared {
            content_md5: i.content_md5.clone(),
            checksum: Checksum {
                checksum_crc32: i.checksum_crc32.clone(),
                checksum_crc32c: i.checksum_crc32c.clone(),
                checksum_sha1: i.checksum_sha1.clone(),
                checksum_sha256: i.checksum_sha256.clone(),
                checksum_crc64nvme: i.checksum_crc64nvme.clone(),
                ..Default::default()
            },
            algorithm: i.checksum_algorithm.clone(),
        };
        let h = headers(
            i.content_type,
            i.content_encoding,
            i.content_disposition,
            i.content_language,
            i.cache_control,
            i.metadata,
        );
        let w = receive(
            &self.store,
            i.body,
            declared,
            trailers,
            self.limits.body_timeout,
        )
        .await?;
        let (b, k) = (bucket.clone(), key.clone());
        let meta = self
            .blocking(move |s| s.commit(&b, &k, w, h, &cond))
            .await?;
        self.created("Put", &bucket, &key, &meta.etag, meta.size)
            .await?;
        let s = sums(&meta.checksums);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&meta)),
            checksum_crc32: s.crc32,
            checksum_crc32c: s.crc32c,
            checksum_sha1: s.sha1,
            checksum_sha256: s.sha256,
            checksum_crc64nvme: s.crc64nvme,
            checksum_type: s.kind,
            ..Default::default()
        }))
    }

    pub(super) async fn get_object_impl(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let (meta, file) = self.blocking(move |s| s.open_blob(&b, &k)).await?;
        preconditions(
            &meta,
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        let span = span(&meta, i.part_number, i.range.as_ref())?;
        let (start, len) = span
            .as_ref()
            .map_or((0, meta.size), |r| (r.start, r.end - r.start));
        let mut file = tokio::fs::File::from_std(file);
        if start > 0 {
            use tokio::io::AsyncSeekExt;
            file.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(|e| s3_error!(InternalError, "cannot read the object: {e}"))?;
        }
        use tokio::io::AsyncReadExt;
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 64 * 1024);
        let whole = span.is_none();
        let checksum_mode = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
        let s = sums(&if whole && checksum_mode {
            meta.checksums.clone()
        } else {
            Checksums::default()
        });
        let h = meta.headers.clone();
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(stream)),
            content_length: Some(len as i64),
            content_range: span
                .map(|r| format!("bytes {}-{}/{}", r.start, r.end.max(1) - 1, meta.size)),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(meta.modified_ms)),
            e_tag: Some(etag(&meta)),
            parts_count: i.part_number.map(|_| meta.parts_count() as i32),
            metadata: (!h.metadata.is_empty()).then(|| h.metadata.clone().into_iter().collect()),
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
            ..Default::default()
        }))
    }

    pub(super) async fn head_object_impl(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let meta = self.blocking(move |s| s.head(&b, &k)).await?;
        preconditions(
            &meta,
            i.if_match.as_ref(),
            i.if_unmodified_since.as_ref(),
            i.if_none_match.as_ref(),
            i.if_modified_since.as_ref(),
        )?;
        let span = span(&meta, i.part_number, i.range.as_ref())?;
        let len = span.as_ref().map_or(meta.size, |r| r.end - r.start);
        let checksum_mode = i
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
        let s = sums(&if checksum_mode {
            meta.checksums.clone()
        } else {
            Checksums::default()
        });
        let h = meta.headers.clone();
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(len as i64),
            content_range: span
                .map(|r| format!("bytes {}-{}/{}", r.start, r.end.max(1) - 1, meta.size)),
            accept_ranges: Some("bytes".into()),
            last_modified: Some(timestamp(meta.modified_ms)),
            e_tag: Some(etag(&meta)),
            parts_count: i.part_number.map(|_| meta.parts_count() as i32),
            metadata: (!h.metadata.is_empty()).then(|| h.metadata.clone().into_iter().collect()),
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
            ..Default::default()
        }))
    }

    pub(super) async fn copy_object_impl(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (src_bucket, src_key) = copy_source(&i.copy_source)?;
        let replace = i
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        let new_headers = replace.then(|| {
            headers(
                i.content_type.clone(),
                i.content_encoding.clone(),
                i.content_disposition.clone(),
                i.content_language.clone(),
                i.cache_control.clone(),
                i.metadata.clone(),
            )
        });
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        let (b, k) = (bucket.clone(), key.clone());
        let meta = self
            .blocking(move |s| {
                let (src, mut file) = s.open_blob(&src_bucket, &src_key)?;
                let blob = s.incoming();
                let mut out = std::fs::File::create(&blob.path).map_err(|e| io(&blob.path, e))?;
                std::io::copy(&mut file, &mut out).map_err(|e| io(&blob.path, e))?;
                let w = Written {
                    blob,
                    size: src.size,
                    md5_hex: src.etag.clone(),
                    checksums: src.checksums.clone(),
                };
                let h = new_headers.unwrap_or(src.headers.clone());
                s.commit(&b, &k, w, h, &PutCondition::default())
            })
            .await?;
        self.created("Copy", &bucket, &key, &meta.etag, meta.size)
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&meta)),
                last_modified: Some(timestamp(meta.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn delete_objects_impl(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let i = req.input;
        super::bucket_ok(&i.bucket)?;
        if i.delete.objects.len() > 1000 {
            return Err(s3_error!(MalformedXML, "at most 1000 keys a request"));
        }
        let quiet = i.delete.quiet.unwrap_or(false);
        let (mut deleted, mut errors) = (Vec::new(), Vec::new());
        for o in i.delete.objects {
            let (b, k) = (i.bucket.clone(), o.key.clone());
            let r = match key_ok(&b, &k) {
                Ok(()) => self.blocking(move |s| s.delete(&b, &k)).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(()) if !quiet => deleted.push(DeletedObject {
                    key: Some(o.key),
                    ..Default::default()
                }),
                Ok(()) => {}
                Err(e) => errors.push(Error {
                    code: Some(e.code().as_str().to_string()),
                    key: Some(o.key),
                    message: e.message().map(str::to_string),
                    version_id: None,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}

pub(super) fn copy_source(source: &CopySource) -> S3Result<(String, String)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => {
            key_ok(bucket, key)?;
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are served"
        )),
    }
}

fn io(path: &std::path::Path, source: std::io::Error) -> crate::store::StoreError {
    crate::store::StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
