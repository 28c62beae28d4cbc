//! Multipart uploads over the store's rules: create, parts (uploaded or copied), list, complete
//! (recorded as an event), and the S3 errors for each refusal.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::body::{declared, receive, to_checksums};
use super::objects::{copy_source, headers, sums};
use super::{Endpoint, key_ok, owner, timestamp};
use crate::store::{CompletedPart as StoredPart, MAX_PARTS, Written};

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "part numbers run from 1 to {MAX_PARTS}, not {n}"
            )
        })
}

impl Endpoint {
    pub(super) async fn create_multipart_upload_impl(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let h = headers(
            i.content_type,
            i.content_encoding,
            i.content_disposition,
            i.content_language,
            i.cache_control,
            i.metadata,
        );
        let algorithm = i.checksum_algorithm.clone();
        let alg = algorithm.as_ref().map(|a| a.as_str().to_ascii_uppercase());
        let (b, k) = (i.bucket.clone(), i.key.clone());
        let id = self
            .blocking(move |s| s.create_upload(&b, &k, h, alg))
            .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(id),
            checksum_algorithm: algorithm.clone(),
            checksum_type: algorithm.map(|_| ChecksumType::from_static(ChecksumType::COMPOSITE)),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_impl(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailers = req.trailing_headers;
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let n = part_number(i.part_number)?;
        let (b, k, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        self.blocking(move |s| s.upload(&id, &b, &k)).await?;
        let declared = declared!(i);
        let w = receive(
            &self.store,
            i.body,
            declared,
            trailers,
            self.limits.body_timeout,
        )
        .await?;
        let (b, k, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let part = self
            .blocking(move |s| s.put_part(&id, &b, &k, n, w))
            .await?;
        let s = sums(&part.checksums);
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(ETag::Strong(part.etag)),
            checksum_crc32: s.crc32,
            checksum_crc32c: s.crc32c,
            checksum_sha1: s.sha1,
            checksum_sha256: s.sha256,
            checksum_crc64nvme: s.crc64nvme,
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy_impl(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let n = part_number(i.part_number)?;
        let (src_bucket, src_key) = copy_source(&i.copy_source)?;
        let range = i.copy_source_range.clone();
        let (b, k, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let part = self
            .blocking(move |s| {
                use s3s::crypto::Checksum as _;
                use std::io::{Read, Seek};
                s.upload(&id, &b, &k)?;
                let (src, mut file) = s.open_blob(&src_bucket, &src_key)?;
                let (start, len) = match range.as_deref() {
                    None => (0, src.size),
                    Some(r) => copy_range(r, src.size)?,
                };
                file.seek(std::io::SeekFrom::Start(start))
                    .map_err(|e| io(&e))?;
                let mut bytes = Vec::new();
                file.take(len).read_to_end(&mut bytes).map_err(|e| io(&e))?;
                let blob = s.incoming();
                std::fs::write(&blob.path, &bytes).map_err(|e| io(&e))?;
                let w = Written {
                    blob,
                    size: len,
                    md5_hex: crate::store::hex(s3s::crypto::Md5::checksum(&bytes)),
                    checksums: Default::default(),
                };
                s.put_part(&id, &b, &k, n, w)
            })
            .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(part.etag)),
                last_modified: Some(timestamp(part.modified_ms)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    pub(super) async fn list_parts_impl(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let (b, k, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let (upload, parts) = self.blocking(move |s| s.parts(&id, &b, &k)).await?;
        let marker = i.part_number_marker.unwrap_or(0).max(0) as u32;
        let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let mut after: Vec<_> = parts.into_iter().filter(|(n, _)| *n > marker).collect();
        let truncated = after.len() > max;
        after.truncate(max);
        let next = after.last().map(|(n, _)| *n as i32);
        let listed = after
            .into_iter()
            .map(|(n, p)| {
                let s = sums(&p.checksums);
                Part {
                    part_number: Some(n as i32),
                    e_tag: Some(ETag::Strong(p.etag)),
                    size: Some(p.size as i64),
                    last_modified: Some(timestamp(p.modified_ms)),
                    checksum_crc32: s.crc32,
                    checksum_crc32c: s.crc32c,
                    checksum_sha1: s.sha1,
                    checksum_sha256: s.sha256,
                    checksum_crc64nvme: s.crc64nvme,
                }
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(i.bucket),
            key: Some(i.key),
            upload_id: Some(i.upload_id),
            part_number_marker: Some(marker as i32),
            next_part_number_marker: next,
            max_parts: Some(max as i32),
            is_truncated: Some(truncated),
            parts: Some(listed),
            initiator: Some(Initiator {
                display_name: Some("weir".into()),
                id: Some("weir".into()),
            }),
            owner: Some(owner()),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
            ..Default::default()
        }))
    }

    pub(super) async fn complete_multipart_upload_impl(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let i = req.input;
        key_ok(&i.bucket, &i.key)?;
        let mut listed = Vec::new();
        for p in i.multipart_upload.and_then(|m| m.parts).unwrap_or_default() {
            let (Some(n), Some(etag)) = (p.part_number, p.e_tag.clone()) else {
                return Err(s3_error!(
                    InvalidPart,
                    "every listed part needs its number and ETag"
                ));
            };
            listed.push(StoredPart {
                number: u32::try_from(n)
                    .map_err(|_| s3_error!(InvalidPart, "part {n} does not exist"))?,
                etag: etag.value().to_string(),
                checksums: to_checksums(Checksum {
                    checksum_crc32: p.checksum_crc32,
                    checksum_crc32c: p.checksum_crc32c,
                    checksum_sha1: p.checksum_sha1,
                    checksum_sha256: p.checksum_sha256,
                    checksum_crc64nvme: p.checksum_crc64nvme,
                    ..Default::default()
                }),
            });
        }
        let (bucket, key) = (i.bucket.clone(), i.key.clone());
        let (b, k, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        let meta = self
            .blocking(move |s| s.complete_upload(&id, &b, &k, &listed))
            .await?;
        self.created(
            "CompleteMultipartUpload",
            &bucket,
            &key,
            &meta.etag,
            meta.size,
        )
        .await?;
        let s = sums(&meta.checksums);
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(bucket.clone()),
            key: Some(key.clone()),
            location: Some(format!("/{bucket}/{}", super::url_encode(&key))),
            e_tag: Some(ETag::Strong(meta.etag)),
            checksum_crc32: s.crc32,
            checksum_crc32c: s.crc32c,
            checksum_sha1: s.sha1,
            checksum_sha256: s.sha256,
            checksum_crc64nvme: s.crc64nvme,
            checksum_type: s.kind,
            ..Default::default()
        }))
    }
}

/// `bytes=first-last` of UploadPartCopy, inside the source.
fn copy_range(r: &str, size: u64) -> Result<(u64, u64), crate::store::StoreError> {
    let bad = || {
        crate::store::StoreError::InvalidArgument(format!(
            "the copy range {r:?} is not bytes=first-last inside the source"
        ))
    };
    let (a, b) = r
        .strip_prefix("bytes=")
        .and_then(|s| s.split_once('-'))
        .ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a > b || b >= size {
        return Err(bad());
    }
    Ok((a, b - a + 1))
}

fn io(e: &std::io::Error) -> crate::store::StoreError {
    crate::store::StoreError::Index(format!("cannot copy the part: {e}"))
}
