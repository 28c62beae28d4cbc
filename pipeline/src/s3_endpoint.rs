//! The built-in S3 endpoint: the S3 protocol (s3s) over `<data>/objects/` (s3s-fs), so any S3
//! client can create buckets and put, get, head, list and delete objects. Keys are checked before
//! the file system sees them (s3s-fs alone lets `../other/x` out of its bucket), and every
//! completed PutObject, CompleteMultipartUpload and CopyObject is recorded on the durable bus
//! before the client hears 200: an upload that was answered is never without its event. The
//! object's bytes are flushed to disk first (s3s-fs renames its temp file without an fsync), so
//! after a power loss the event never points at an object that is not there.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use crate::events::{Event, ObjectRef, stable_id};
use crate::http::events::EventsState;
use crate::store::{check_bucket, check_key};

pub struct Endpoint {
    fs: s3s_fs::FileSystem,
    objects: std::path::PathBuf,
    events: Arc<EventsState>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the objects folder for the S3 endpoint: {0}")]
pub struct EndpointError(String);

impl Endpoint {
    pub fn new(objects: &std::path::Path, events: Arc<EventsState>) -> Result<Self, EndpointError> {
        let fs = s3s_fs::FileSystem::new(objects).map_err(|e| EndpointError(format!("{e:?}")))?;
        Ok(Endpoint {
            fs,
            objects: objects.to_path_buf(),
            events,
        })
    }

    /// A service for `http::serve`, with SigV4 authentication against one key pair.
    pub fn service(self, access_key: &str, secret_key: &str) -> s3s::service::S3Service {
        let mut b = s3s::service::S3ServiceBuilder::new(self);
        b.set_auth(s3s::auth::SimpleAuth::from_single(access_key, secret_key));
        b.build()
    }

    async fn created(
        &self,
        name: &str,
        bucket: &str,
        key: &str,
        etag: Option<String>,
        size: Option<u64>,
    ) -> S3Result<()> {
        let path = self.objects.join(bucket).join(key);
        let synced = tokio::task::spawn_blocking(move || sync_file_and_folder(&path)).await;
        if let Err(e) = synced
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r)
        {
            tracing::error!(error = %e, bucket, key, "an uploaded object could not be flushed to disk");
            return Err(s3_error!(
                ServiceUnavailable,
                "the upload could not be stored durably; retry it"
            ));
        }
        let time = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let id = stable_id(&["weir:s3", bucket, key, etag.as_deref().unwrap_or(""), &time]);
        let object = ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size,
            etag,
            version: None,
        };
        let event = Event {
            id,
            source: "weir:s3".into(),
            time,
            name: format!("s3:ObjectCreated:{name}"),
            object,
        };
        self.events.record(event).await.map_err(|e| {
            tracing::error!(error = %e, "an upload's event could not be recorded; the client is told to retry");
            s3_error!(ServiceUnavailable, "the upload could not be recorded; retry it")
        })?;
        Ok(())
    }
}

/// Listings asked for with `encoding-type=url` carry their keys percent-encoded, as S3 does.
/// boto3 and the aws CLI always ask, and decode with `unquote_plus`: a raw `+` in a key would
/// reach them as a space (s3s-fs ignores the parameter).
fn wants_url_encoding(t: &Option<EncodingType>) -> bool {
    t.as_ref()
        .is_some_and(|t| t.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

/// Everything but RFC 3986's unreserved characters and `/` (S3 leaves the separator readable).
const KEY_ESCAPES: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn url_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, KEY_ESCAPES).to_string()
}

fn url_encode_opt(field: &mut Option<String>) {
    if let Some(v) = field {
        *v = url_encode(v);
    }
}

fn url_encode_listed(contents: &mut Option<Vec<Object>>, prefixes: &mut Option<Vec<CommonPrefix>>) {
    for o in contents.iter_mut().flatten() {
        url_encode_opt(&mut o.key);
    }
    for p in prefixes.iter_mut().flatten() {
        url_encode_opt(&mut p.prefix);
    }
}

/// Make a renamed file durable: its bytes, then the folder entry that names it.
fn sync_file_and_folder(path: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

fn bucket_ok(bucket: &str) -> S3Result<()> {
    check_bucket(bucket)
        .map_err(|m| s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidBucketName, m))
}

fn key_ok(bucket: &str, key: &str) -> S3Result<()> {
    bucket_ok(bucket)?;
    check_key(key).map_err(|m| s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, m))
}

fn source_ok(source: &CopySource) -> S3Result<()> {
    match source {
        CopySource::Bucket { bucket, key, .. } => key_ok(bucket, key),
        _ => Err(s3_error!(
            NotImplemented,
            "only bucket/key copy sources are served"
        )),
    }
}

#[async_trait::async_trait]
impl S3 for Endpoint {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket_ok(&req.input.bucket)?;
        self.fs.create_bucket(req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket_ok(&req.input.bucket)?;
        self.fs.delete_bucket(req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket_ok(&req.input.bucket)?;
        self.fs.head_bucket(req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket_ok(&req.input.bucket)?;
        self.fs.get_bucket_location(req).await
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        self.fs.list_buckets(req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        bucket_ok(&req.input.bucket)?;
        let encode = wants_url_encoding(&req.input.encoding_type);
        let mut res = self.fs.list_objects(req).await?;
        if encode {
            let o = &mut res.output;
            o.encoding_type = Some(EncodingType::from_static(EncodingType::URL));
            for field in [
                &mut o.prefix,
                &mut o.delimiter,
                &mut o.marker,
                &mut o.next_marker,
            ] {
                url_encode_opt(field);
            }
            url_encode_listed(&mut o.contents, &mut o.common_prefixes);
        }
        Ok(res)
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        bucket_ok(&req.input.bucket)?;
        let encode = wants_url_encoding(&req.input.encoding_type);
        let mut res = self.fs.list_objects_v2(req).await?;
        if encode {
            let o = &mut res.output;
            o.encoding_type = Some(EncodingType::from_static(EncodingType::URL));
            for field in [&mut o.prefix, &mut o.delimiter, &mut o.start_after] {
                url_encode_opt(field);
            }
            url_encode_listed(&mut o.contents, &mut o.common_prefixes);
        }
        Ok(res)
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.get_object(req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.head_object(req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.delete_object(req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        bucket_ok(&req.input.bucket)?;
        for o in &req.input.delete.objects {
            key_ok(&req.input.bucket, &o.key)?;
        }
        self.fs.delete_objects(req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let size = req.input.content_length.and_then(|n| u64::try_from(n).ok());
        let res = self.fs.put_object(req).await?;
        self.created(
            "Put",
            &bucket,
            &key,
            res.output.e_tag.clone().map(|e| e.value().to_string()),
            size,
        )
        .await?;
        Ok(res)
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        source_ok(&req.input.copy_source)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let res = self.fs.copy_object(req).await?;
        let etag = res
            .output
            .copy_object_result
            .as_ref()
            .and_then(|r| r.e_tag.clone())
            .map(|e| e.value().to_string());
        self.created("Copy", &bucket, &key, etag, None).await?;
        Ok(res)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.upload_part(req).await
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        source_ok(&req.input.copy_source)?;
        self.fs.upload_part_copy(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        let res = self.fs.complete_multipart_upload(req).await?;
        let etag = res.output.e_tag.clone().map(|e| e.value().to_string());
        self.created("CompleteMultipartUpload", &bucket, &key, etag, None)
            .await?;
        Ok(res)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        key_ok(&req.input.bucket, &req.input.key)?;
        self.fs.abort_multipart_upload(req).await
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
