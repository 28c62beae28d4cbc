//! Connecting to an S3 store (the configuration's settings, the AWS credentials chain, the
//! checksum and timeout choices) and sorting its failures into `StoreErrorKind`s.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    timeout::TimeoutConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::{StoreError, StoreErrorKind};

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
    pub(super) client: Client,
    /// Named in every error, so a log line says which store failed.
    pub(super) endpoint: String,
    /// Where streamed objects are spooled (`<data>/tmp`).
    pub(super) spool_dir: PathBuf,
    pub(super) region: String,
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
    pub(super) fn error<E>(
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
