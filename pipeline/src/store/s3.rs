//! Any S3 (AWS, MinIO, Ceph RGW, Garage, or another Weir's built-in endpoint) as the object
//! store, through aws-sdk-s3. Checksums are sent and checked only when an operation requires
//! them: older gateways refuse the SDK's newer default CRCs. Objects a function streams are
//! spooled to an unlinked temporary file, never held whole; outputs over `MULTIPART_ABOVE` go up
//! in parts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use weir_functions::Source;

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

/// `store: { kind: s3, ... }` as the configuration gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    /// `http(s)://host:port`; AWS's own endpoints when left out.
    pub endpoint: Option<String>,
    /// From the AWS environment or profile when left out, else `us-east-1`.
    pub region: Option<String>,
    /// `http://host/bucket/key` rather than `http://bucket.host/key`. Default: on when an
    /// endpoint is given (MinIO, Ceph, Garage want it), off for AWS.
    pub path_style: Option<bool>,
    /// Both or neither; neither means the AWS credentials chain (environment, profile, ...).
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(Clone)]
pub struct S3Store {
    client: Client,
    /// Named in every error, so a log line says which store failed.
    endpoint: String,
    /// Where streamed objects are spooled (`<data>/tmp`).
    spool_dir: PathBuf,
    region: String,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl S3Store {
    /// A client for the store; no request is made yet (the start-up check is `ensure_bucket`).
    pub async fn connect(settings: &S3Settings, spool_dir: PathBuf) -> S3Store {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(e) = &settings.endpoint {
            loader = loader.endpoint_url(e);
        }
        if let (Some(ak), Some(sk)) = (&settings.access_key, &settings.secret_key) {
            loader = loader.credentials_provider(Credentials::new(ak, sk, None, None, "weir.yaml"));
        }
        let region = match &settings.region {
            Some(r) => Region::new(r.clone()),
            None => aws_config::meta::region::RegionProviderChain::default_provider()
                .or_else("us-east-1")
                .region()
                .await
                .unwrap_or_else(|| Region::new("us-east-1")),
        };
        let shared = loader.region(region.clone()).load().await;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build();
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style.unwrap_or(settings.endpoint.is_some()))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(timeouts)
            .build();
        S3Store {
            client: Client::from_conf(config),
            endpoint: settings
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 ({region})")),
            spool_dir,
            region: region.to_string(),
        }
    }

    /// Sorts an SDK failure into its kind, naming the operation, the object and the endpoint.
    fn error<E>(
        &self,
        op: &str,
        bucket: &str,
        key: &str,
        e: SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (kind, detail) = match &e {
            SdkError::ServiceError(s) => {
                let status = s.raw().status().as_u16();
                // A HEAD's reply has no body, so no code: name the status instead.
                let code = s.err().code().unwrap_or("");
                let named = match code {
                    "" => hyper::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or(""),
                    code => code,
                };
                let detail = match s.err().message() {
                    Some(m) => format!("{status} {named}: {m}"),
                    None => format!("{status} {named}"),
                };
                (kind_of(status, code), detail)
            }
            SdkError::ConstructionFailure(_) => (
                StoreErrorKind::BadRequest,
                DisplayErrorContext(&e).to_string(),
            ),
            _ => (
                StoreErrorKind::Transient,
                DisplayErrorContext(&e).to_string(),
            ),
        };
        StoreError::Remote {
            kind,
            message: format!("{op} s3://{bucket}/{key} at {}: {detail}", self.endpoint),
        }
    }

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

/// What an S3 status and error code mean to the caller.
fn kind_of(status: u16, code: &str) -> StoreErrorKind {
    match (status, code) {
        (_, "NoSuchKey" | "NoSuchBucket" | "NotFound" | "NoSuchUpload") | (404, _) => {
            StoreErrorKind::NotFound
        }
        (_, "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch") | (401 | 403, _) => {
            StoreErrorKind::Denied
        }
        (_, "SlowDown" | "RequestTimeout" | "InternalError") | (408 | 429 | 500.., _) => {
            StoreErrorKind::Transient
        }
        _ => StoreErrorKind::BadRequest,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes_sort_into_kinds() {
        assert_eq!(kind_of(404, ""), StoreErrorKind::NotFound);
        assert_eq!(kind_of(400, "NoSuchBucket"), StoreErrorKind::NotFound);
        assert_eq!(
            kind_of(403, "SignatureDoesNotMatch"),
            StoreErrorKind::Denied
        );
        assert_eq!(kind_of(400, "InvalidAccessKeyId"), StoreErrorKind::Denied);
        assert_eq!(kind_of(503, "SlowDown"), StoreErrorKind::Transient);
        assert_eq!(kind_of(500, ""), StoreErrorKind::Transient);
        assert_eq!(
            kind_of(412, "PreconditionFailed"),
            StoreErrorKind::BadRequest
        );
        assert_eq!(kind_of(400, "InvalidArgument"), StoreErrorKind::BadRequest);
    }
}
