//! Listings: buckets, objects (V1 markers, V2 continuation tokens and start-after, delimiters
//! and common prefixes, `encoding-type=url`), object versions of an unversioned bucket (every
//! version is `null`), and unfinished multipart uploads.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

use super::{Endpoint, bucket_ok, owner, timestamp, url_encode, wants_url_encoding};
use crate::store::{ListPage, ListQuery, ObjectMeta};

fn max_keys(n: Option<i32>) -> S3Result<usize> {
    match n {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys may not be negative")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

/// Encodes a listed string when the client asked for `encoding-type=url`.
struct Enc(bool);

impl Enc {
    fn s(&self, v: String) -> String {
        if self.0 { url_encode(&v) } else { v }
    }
    fn o(&self, v: Option<String>) -> Option<String> {
        v.map(|v| self.s(v))
    }
    fn kind(&self) -> Option<EncodingType> {
        self.0.then(|| EncodingType::from_static(EncodingType::URL))
    }
    fn prefixes(&self, p: Vec<String>) -> Option<Vec<CommonPrefix>> {
        Some(
            p.into_iter()
                .map(|p| CommonPrefix {
                    prefix: Some(self.s(p)),
                })
                .collect(),
        )
    }
}

fn object(enc: &Enc, key: String, m: &ObjectMeta, with_owner: bool) -> Object {
    Object {
        key: Some(enc.s(key)),
        size: Some(m.size as i64),
        e_tag: Some(ETag::Strong(m.etag.clone())),
        last_modified: Some(timestamp(m.modified_ms)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner: with_owner.then(owner),
        ..Default::default()
    }
}

impl Endpoint {
    async fn page(&self, bucket: &str, q: ListQuery) -> S3Result<ListPage<ObjectMeta>> {
        bucket_ok(bucket)?;
        let b = bucket.to_string();
        self.blocking(move |s| s.list_page(&b, &q)).await
    }

    pub(super) async fn list_buckets_impl(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.blocking(|s| s.buckets()).await?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|(name, created)| Bucket {
                        name: Some(name),
                        creation_date: Some(timestamp(created)),
                        bucket_region: None,
                    })
                    .collect(),
            ),
            owner: Some(owner()),
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_impl(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let i = req.input;
        let enc = Enc(wants_url_encoding(&i.encoding_type));
        let max = max_keys(i.max_keys)?;
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after: i.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max,
        };
        let p = self.page(&i.bucket, q).await?;
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.s(i.prefix.unwrap_or_default())),
            delimiter: enc.o(i.delimiter),
            marker: Some(enc.s(i.marker.unwrap_or_default())),
            next_marker: if p.truncated { enc.o(p.last) } else { None },
            max_keys: Some(max as i32),
            is_truncated: Some(p.truncated),
            contents: Some(
                p.objects
                    .into_iter()
                    .map(|(k, m)| object(&enc, k, &m, true))
                    .collect(),
            ),
            common_prefixes: enc.prefixes(p.prefixes),
            encoding_type: enc.kind(),
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_v2_impl(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let i = req.input;
        let enc = Enc(wants_url_encoding(&i.encoding_type));
        let max = max_keys(i.max_keys)?;
        let after = match &i.continuation_token {
            Some(t) => Some(decode_token(t)?),
            None => i.start_after.clone().filter(|s| !s.is_empty()),
        };
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after,
            max_keys: max,
        };
        let p = self.page(&i.bucket, q).await?;
        let with_owner = i.fetch_owner.unwrap_or(false);
        let count = p.objects.len() + p.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(i.bucket),
            prefix: Some(enc.s(i.prefix.unwrap_or_default())),
            delimiter: enc.o(i.delimiter),
            start_after: enc.o(i.start_after),
            continuation_token: i.continuation_token,
            next_continuation_token: if p.truncated {
                p.last.as_deref().map(encode_token)
            } else {
                None
            },
            key_count: Some(count as i32),
            max_keys: Some(max as i32),
            is_truncated: Some(p.truncated),
            contents: Some(
                p.objects
                    .into_iter()
                    .map(|(k, m)| object(&enc, k, &m, with_owner))
                    .collect(),
            ),
            common_prefixes: enc.prefixes(p.prefixes),
            encoding_type: enc.kind(),
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions_impl(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let i = req.input;
        let enc = Enc(wants_url_encoding(&i.encoding_type));
        let max = max_keys(i.max_keys)?;
        let q = ListQuery {
            prefix: i.prefix.clone().unwrap_or_default(),
            delimiter: i.delimiter.clone(),
            after: i.key_marker.clone().filter(|m| !m.is_empty()),
            max_keys: max,
        };
        let p = self.page(&i.bucket, q).await?;
        let versions = p
            .objects
            .into_iter()
            .map(|(k, m)| ObjectVersion {
                key: Some(enc.s(k)),
                version_id: Some("null".into()),
                is_latest: Some(true),
                size: Some(m.size as i64),
                e_tag: Some(ETag::Strong(m.etag.clone())),
                last_modified: Some(timestamp(m.modified_ms)),
                storage_class: Some(ObjectVersionStorageClass::from_static(
                    ObjectVersionStorageClass::STANDARD,
                )),
                owner: Some(owner()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(i.bucket),
            prefix: Some(enc.s(i.prefix.unwrap_or_default())),
            delimiter: enc.o(i.delimiter),
            key_marker: Some(enc.s(i.key_marker.unwrap_or_default())),
            version_id_marker: Some(i.version_id_marker.unwrap_or_default()),
            next_key_marker: if p.truncated { enc.o(p.last) } else { None },
            next_version_id_marker: p.truncated.then(|| "null".to_string()),
            max_keys: Some(max as i32),
            is_truncated: Some(p.truncated),
            versions: Some(versions),
            common_prefixes: enc.prefixes(p.prefixes),
            encoding_type: enc.kind(),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_impl(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let i = req.input;
        bucket_ok(&i.bucket)?;
        let enc = Enc(wants_url_encoding(&i.encoding_type));
        let b = i.bucket.clone();
        let all = self.blocking(move |s| s.uploads(&b)).await?;
        let prefix = i.prefix.clone().unwrap_or_default();
        let max = max_keys(i.max_uploads)?;
        let marker = i.key_marker.clone().unwrap_or_default();
        let mut matching: Vec<_> = all
            .into_iter()
            .filter(|(_, u)| u.key.starts_with(&prefix) && u.key > marker)
            .collect();
        let truncated = matching.len() > max;
        matching.truncate(max);
        let next = matching.last().map(|(id, u)| (u.key.clone(), id.clone()));
        let uploads = matching
            .into_iter()
            .map(|(id, u)| MultipartUpload {
                key: Some(enc.s(u.key)),
                upload_id: Some(id),
                initiated: Some(timestamp(u.initiated_ms)),
                initiator: Some(Initiator {
                    display_name: Some("weir".into()),
                    id: Some("weir".into()),
                }),
                owner: Some(owner()),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(i.bucket),
            prefix: Some(enc.s(prefix)),
            key_marker: Some(enc.s(marker)),
            upload_id_marker: Some(i.upload_id_marker.unwrap_or_default()),
            next_key_marker: truncated
                .then(|| next.clone().map(|n| enc.s(n.0)))
                .flatten(),
            next_upload_id_marker: truncated.then(|| next.map(|n| n.1)).flatten(),
            max_uploads: Some(max as i32),
            is_truncated: Some(truncated),
            uploads: Some(uploads),
            encoding_type: enc.kind(),
            ..Default::default()
        }))
    }
}

/// Continuation tokens are opaque to clients: the last key or prefix of the page, base64url.
fn encode_token(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(last)
}

fn decode_token(t: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| s3_error!(InvalidArgument, "the continuation token is not valid"))
}
