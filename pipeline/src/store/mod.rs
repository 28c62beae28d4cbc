//! Where objects live: the `ObjectStore` seam (`seam.rs`) with its two implementations, Weir's
//! local store (blobs and an index under `<data>/objects`, `local.rs`, seen through the seam in
//! `local_seam.rs`) and any S3 (`s3.rs`); the pure listing logic; the keys outputs are written
//! under and the provenance they carry. The built-in S3 endpoint serves `LocalStore` itself; the
//! dispatcher and the poller see only the seam.

mod buckets;
mod checksum;
mod list;
mod local;
mod local_seam;
mod meta;
mod migrate;
mod multipart;
pub mod provenance;
pub mod s3;
mod seam;
mod template;

pub use list::{ListPage, ListQuery, prefix_end};
pub use local::{Incoming, LocalStore, PutCondition, Written, hex};
pub use meta::{Checksums, ObjectHeaders, ObjectMeta, PartMeta, UploadMeta, now_ms};
pub use multipart::{CompletedPart, MAX_PARTS, MIN_PART_SIZE};
pub use seam::{
    Fetched, Head, Metadata, ObjectInfo, ObjectStore, Page, PageRequest, PutOptions,
    StoreErrorKind, page_size,
};
pub use template::{KeyTemplate, TemplateError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    BadName(String),
    #[error("no bucket {0:?}")]
    NoSuchBucket(String),
    #[error("no object {key:?} in bucket {bucket:?}")]
    NotFound { bucket: String, key: String },
    #[error("bucket {0:?} is not empty")]
    BucketNotEmpty(String),
    #[error("no multipart upload {0:?} for this bucket and key")]
    NoSuchUpload(String),
    #[error("object {key:?} is {size} bytes, over the limit of {limit}")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("precondition failed: {0}")]
    PreconditionFailed(&'static str),
    #[error("{0}")]
    InvalidPart(String),
    #[error("the parts are not listed in ascending order of part number")]
    InvalidPartOrder,
    #[error("part {part} is {size} bytes; every part but the last needs at least 5 MiB")]
    EntityTooSmall { part: u32, size: u64 },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("the object index failed: {0}")]
    Index(String),
    /// A remote store's answer, already sorted into its kind.
    #[error("{message}")]
    Remote {
        kind: StoreErrorKind,
        message: String,
    },
}

impl StoreError {
    /// The one decision a caller makes on a failure (retry, dead letter, which status).
    pub fn kind(&self) -> StoreErrorKind {
        use StoreErrorKind as K;
        match self {
            StoreError::NoSuchBucket(_)
            | StoreError::NotFound { .. }
            | StoreError::NoSuchUpload(_) => K::NotFound,
            StoreError::TooLarge { .. } => K::TooLarge,
            StoreError::Io { .. } | StoreError::Index(_) => K::Transient,
            StoreError::Remote { kind, .. } => *kind,
            StoreError::BadName(_)
            | StoreError::BucketNotEmpty(_)
            | StoreError::PreconditionFailed(_)
            | StoreError::InvalidPart(_)
            | StoreError::InvalidPartOrder
            | StoreError::EntityTooSmall { .. }
            | StoreError::InvalidArgument(_) => K::BadRequest,
        }
    }
}

/// A key as S3 allows it: 1 to 1024 bytes of UTF-8. Keys never become file names, so `..`,
/// `//` or a leading `/` are ordinary characters; control characters are refused because XML
/// 1.0 (S3's listings) cannot carry most of them.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err(format!(
            "a key has 1 to 1024 bytes, this one has {}",
            key.len()
        ));
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return Err(format!(
            "a key may not contain control characters (found U+{:04X})",
            c as u32
        ));
    }
    Ok(())
}

/// Bucket names as S3 allows them: 3 to 63 of a-z, 0-9, '-' and '.', starting and ending with
/// a letter or digit.
pub fn check_bucket(name: &str) -> Result<(), String> {
    let ok = (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid bucket name (3-63 of a-z, 0-9, '-', '.')"
        ))
    }
}

#[cfg(test)]
mod tests;
