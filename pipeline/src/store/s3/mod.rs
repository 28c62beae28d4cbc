//! Any S3 (AWS, MinIO, Ceph RGW, Garage, or another Weir's built-in endpoint) as the object
//! store, through aws-sdk-s3. Checksums are sent and checked only when an operation requires
//! them: older gateways refuse the SDK's newer default CRCs. Objects a function streams are
//! spooled to an unlinked temporary file, never held whole; outputs over `MULTIPART_ABOVE` go up
//! in parts.

mod connect;

use std::sync::Arc;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use weir_functions::Source;

pub use connect::{S3Settings, S3Store};

use super::seam::{
    Fetched, Head, ObjectInfo, ObjectStore, Page, PageRequest, PutOptions, StoreErrorKind,
    page_size,
};
use super::{StoreError, meta::now_ms};
use crate::spool::SpoolError;

/// Outputs larger than this are written with a multipart upload.
pub const MULTIPART_ABOVE: usize = 16 << 20;
/// The size of each part but the last (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

impl S3Store {
    async fn get_body(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<(ObjectInfo, ByteStream), StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("GET", bucket, key, e))?;
        let size = out.content_length().unwrap_or(0).max(0) as u64;
        if size > limit {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size,
                limit,
            });
        }
        let info = ObjectInfo {
            key: key.into(),
            size,
            etag: unquote(out.e_tag().unwrap_or_default()),
            modified_ms: millis(out.last_modified()),
        };
        Ok((info, out.body))
    }

    async fn put_in_parts(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &PutOptions,
    ) -> Result<String, StoreError> {
        let fail = |e| self.error("multipart PUT", bucket, key, e);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(options.content_type.clone())
            .set_metadata(Some(options.metadata.clone().into_iter().collect()))
            .send()
            .await
            .map_err(fail)?;
        let id = created.upload_id().unwrap_or_default().to_string();
        let upload = async {
            let mut parts = Vec::new();
            for (i, start) in (0..body.len()).step_by(PART_SIZE).enumerate() {
                let n = i as i32 + 1;
                let chunk = body.slice(start..(start + PART_SIZE).min(body.len()));
                let part = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .part_number(n)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| self.error("upload part", bucket, key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(part.e_tag().map(str::to_string))
                        .build(),
                );
            }
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error("complete multipart", bucket, key, e))?;
            Ok::<_, StoreError>(done.e_tag().unwrap_or_default().to_string())
        };
        match upload.await {
            Ok(etag) => Ok(etag),
            Err(e) => {
                // Leave no half-finished upload behind (it would hold storage until expired).
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&id)
                    .send()
                    .await;
                Err(e)
            }
        }
    }
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn millis(t: Option<&aws_sdk_s3::primitives::DateTime>) -> u64 {
    t.and_then(|t| t.to_millis().ok()).unwrap_or(0).max(0) as u64
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let head = self.client.head_bucket().bucket(bucket).send().await;
        match head.map_err(|e| self.error("HEAD bucket", bucket, "", e)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == StoreErrorKind::NotFound => {
                let mut create = self.client.create_bucket().bucket(bucket);
                if self.region != "us-east-1" {
                    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
                    create = create.create_bucket_configuration(
                        CreateBucketConfiguration::builder()
                            .location_constraint(BucketLocationConstraint::from(
                                self.region.as_str(),
                            ))
                            .build(),
                    );
                }
                match create.send().await {
                    Ok(_) => Ok(()),
                    Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                    Err(e) => Err(self.error("create bucket", bucket, "", e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Fetched<Bytes>, StoreError> {
        let (info, mut body) = self.get_body(bucket, key, limit).await?;
        let mut bytes = Vec::with_capacity(info.size as usize);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreError::Remote {
                kind: StoreErrorKind::Transient,
                message: format!("GET s3://{bucket}/{key} at {}: {e}", self.endpoint),
            })?;
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(StoreError::TooLarge {
                    key: key.into(),
                    size: (bytes.len() + chunk.len()) as u64,
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            info,
            body: Bytes::from(bytes),
        })
    }

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<Fetched<Arc<dyn Source>>, StoreError> {
        let (info, body) = self.get_body(bucket, key, limit).await?;
        let chunks = futures::stream::unfold(body, |mut b| async move {
            let next = b.next().await?;
            Some((next.map_err(|e| SpoolError::Read(e.to_string())), b))
        });
        let file = crate::spool::to_file(std::pin::pin!(chunks), limit, &self.spool_dir)
            .await
            .map_err(|e| match e {
                SpoolError::TooLarge(_) => StoreError::TooLarge {
                    key: key.into(),
                    size: limit + 1,
                    limit,
                },
                e => StoreError::Remote {
                    kind: StoreErrorKind::Transient,
                    message: format!("GET s3://{bucket}/{key} at {}: {e}", self.endpoint),
                },
            })?;
        Ok(Fetched {
            info,
            body: Arc::new(file),
        })
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &PutOptions,
    ) -> Result<ObjectInfo, StoreError> {
        let size = body.len() as u64;
        let etag = if body.len() > MULTIPART_ABOVE {
            self.put_in_parts(bucket, key, body, options).await?
        } else {
            let out = self
                .client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_length(size as i64)
                .set_content_type(options.content_type.clone())
                .set_metadata(Some(options.metadata.clone().into_iter().collect()))
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| self.error("PUT", bucket, key, e))?;
            out.e_tag().unwrap_or_default().to_string()
        };
        Ok(ObjectInfo {
            key: key.into(),
            size,
            etag: unquote(&etag),
            // The store sets the real time; a PUT's reply does not carry it.
            modified_ms: now_ms(),
        })
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Head, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("HEAD", bucket, key, e))?;
        Ok(Head {
            info: ObjectInfo {
                key: key.into(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: unquote(out.e_tag().unwrap_or_default()),
                modified_ms: millis(out.last_modified()),
            },
            content_type: out.content_type().map(str::to_string),
            metadata: out
                .metadata()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }

    async fn list(&self, bucket: &str, request: &PageRequest) -> Result<Page, StoreError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&request.prefix)
            .set_start_after(request.start_after.clone())
            .max_keys(page_size(request.max) as i32)
            .send()
            .await
            .map_err(|e| self.error("LIST", bucket, &request.prefix, e))?;
        let objects: Vec<ObjectInfo> = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ObjectInfo {
                    key: o.key()?.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: unquote(o.e_tag().unwrap_or_default()),
                    modified_ms: millis(o.last_modified()),
                })
            })
            .collect();
        // Resume after the last key rather than by continuation token: the poller keeps its
        // place across restarts, and every S3 honours start-after.
        let next = match out.is_truncated() {
            Some(true) => objects.last().map(|o| o.key.clone()),
            _ => None,
        };
        Ok(Page { objects, next })
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("DELETE", bucket, key, e))
    }
}
