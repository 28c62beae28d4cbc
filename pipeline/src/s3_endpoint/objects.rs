//! Objects: PUT (verified, then committed atomically), GET and HEAD (conditional, ranged, by
//! part), COPY and multi-object DELETE.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::body::{declared, receive};
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

pub(super) fn etag(meta: &ObjectMeta) -> ETag {
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
        let declared = declared!(i);
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
