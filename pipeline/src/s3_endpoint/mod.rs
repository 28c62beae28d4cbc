//! The built-in S3 endpoint: the S3 protocol (s3s) over Weir's local store. Bodies are verified
//! before an object becomes visible, objects are replaced atomically, any key S3 allows works,
//! and multipart uploads follow S3's rules (`crate::store`). Every completed PutObject,
//! CompleteMultipartUpload and CopyObject is recorded on the durable bus before the client
//! hears 200: an upload that was answered is never without its event, and its blob was synced
//! before the index named it.

mod body;
mod listing;
mod multipart;
mod objects;
mod read;
mod request_id;

use std::sync::Arc;
use std::time::Duration;

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::store::{LocalStore, StoreError, check_bucket, check_key};
use crate::triggers::Ingress;

/// Limits of the endpoint (`s3:` in weir.yaml).
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

pub struct Endpoint {
    store: LocalStore,
    events: Arc<Ingress>,
    limits: EndpointLimits,
}

impl Endpoint {
    pub fn new(store: LocalStore, events: Arc<Ingress>, limits: EndpointLimits) -> Self {
        Endpoint {
            store,
            events,
            limits,
        }
    }

    /// A service for `http::serve`, with SigV4 authentication against one key pair and a
    /// request id on every response.
    pub fn service(self, access_key: &str, secret_key: &str) -> request_id::WithRequestIds {
        let mut b = s3s::service::S3ServiceBuilder::new(self);
        b.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        request_id::WithRequestIds::new(b.build())
    }

    /// Runs a blocking store call off the runtime's threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LocalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> S3Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|e| s3_error!(InternalError, "a storage task failed: {e}"))?
            .map_err(store_error)
    }

    async fn created(
        &self,
        name: &str,
        bucket: &str,
        key: &str,
        etag: &str,
        size: u64,
    ) -> S3Result<()> {
        let event = crate::triggers::s3_endpoint::uploaded(name, bucket, key, etag, size);
        self.events.record(event).await.map(drop).map_err(|e| {
            tracing::error!(error = %e, "an upload's event could not be recorded; the client is told to retry");
            s3_error!(ServiceUnavailable, "the upload could not be recorded; retry it")
        })
    }
}

/// The store's refusals as S3's codes; server faults are logged with their cause.
fn store_error(e: StoreError) -> S3Error {
    use S3ErrorCode as C;
    let code = match &e {
        StoreError::BadName(_) | StoreError::InvalidArgument(_) => C::InvalidArgument,
        StoreError::NoSuchBucket(_) => C::NoSuchBucket,
        StoreError::NotFound { .. } => C::NoSuchKey,
        StoreError::BucketNotEmpty(_) => C::BucketNotEmpty,
        StoreError::NoSuchUpload(_) => C::NoSuchUpload,
        StoreError::TooLarge { .. } => C::EntityTooLarge,
        StoreError::PreconditionFailed(_) => C::PreconditionFailed,
        StoreError::InvalidPart(_) => C::InvalidPart,
        StoreError::InvalidPartOrder => C::InvalidPartOrder,
        StoreError::EntityTooSmall { .. } => C::EntityTooSmall,
        StoreError::Io { .. } | StoreError::Index(_) | StoreError::Remote { .. } => {
            tracing::error!(error = %e, "the object store failed");
            C::InternalError
        }
    };
    S3Error::with_message(code, e.to_string())
}

/// Listings asked for with `encoding-type=url` carry their keys percent-encoded, as S3 does.
/// boto3 and the aws CLI always ask, and decode with `unquote_plus`: a raw `+` in a key would
/// reach them as a space.
fn wants_url_encoding(t: &Option<EncodingType>) -> bool {
    t.as_ref()
        .is_some_and(|t| t.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

fn url_encode(s: &str) -> String {
    crate::store::provenance::encode_key(s)
}

fn bucket_ok(bucket: &str) -> S3Result<()> {
    check_bucket(bucket).map_err(|m| S3Error::with_message(S3ErrorCode::InvalidBucketName, m))
}

fn key_ok(bucket: &str, key: &str) -> S3Result<()> {
    bucket_ok(bucket)?;
    if key.len() > 1024 {
        return Err(s3_error!(
            KeyTooLongError,
            "a key has at most 1024 bytes, this one has {}",
            key.len()
        ));
    }
    check_key(key).map_err(|m| S3Error::with_message(S3ErrorCode::InvalidArgument, m))
}

fn owner() -> Owner {
    Owner {
        display_name: Some("weir".into()),
        id: Some("weir".into()),
    }
}

fn timestamp(ms: u64) -> Timestamp {
    Timestamp::from(std::time::UNIX_EPOCH + Duration::from_millis(ms))
}

#[async_trait::async_trait]
impl S3 for Endpoint {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket.clone();
        bucket_ok(&bucket)?;
        let b = bucket.clone();
        if !self.blocking(move |s| s.create_bucket(&b)).await? {
            return Err(s3_error!(
                BucketAlreadyOwnedByYou,
                "you already own {bucket}"
            ));
        }
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket.clone();
        bucket_ok(&bucket)?;
        self.blocking(move |s| s.delete_bucket(&bucket)).await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = req.input.bucket.clone();
        bucket_ok(&bucket)?;
        if !self.blocking(move |s| s.bucket_exists(&bucket)).await? {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = req.input.bucket.clone();
        bucket_ok(&bucket)?;
        if !self.blocking(move |s| s.bucket_exists(&bucket)).await? {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.list_buckets_impl(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        self.list_objects_impl(req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        self.list_objects_v2_impl(req).await
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        self.list_object_versions_impl(req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_impl(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        self.head_object_impl(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.put_object_impl(req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        self.copy_object_impl(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        key_ok(&bucket, &key)?;
        self.blocking(move |s| s.delete(&bucket, &key)).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        self.delete_objects_impl(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.create_multipart_upload_impl(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        self.upload_part_impl(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        self.upload_part_copy_impl(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        self.list_parts_impl(req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_impl(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_impl(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let i = &req.input;
        let (bucket, key, id) = (i.bucket.clone(), i.key.clone(), i.upload_id.clone());
        key_ok(&bucket, &key)?;
        self.blocking(move |s| s.abort_upload(&id, &bucket, &key))
            .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::url_encode;

    #[test]
    fn listed_keys_are_encoded_as_s3_encodes_them() {
        assert_eq!(url_encode("photos/my cat+1.jpg"), "photos/my%20cat%2B1.jpg");
        assert_eq!(url_encode("été/ü.PNG"), "%C3%A9t%C3%A9/%C3%BC.PNG");
        assert_eq!(url_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(url_encode("100%&x=y"), "100%25%26x%3Dy");
    }
}
