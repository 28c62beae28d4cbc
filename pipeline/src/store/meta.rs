//! What the index keeps about an object, a multipart upload and its parts. Stored as JSON values
//! in the index, so a field added later reads back as its default from older records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Headers a client sets on an object and gets back on every GET and HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// `x-amz-meta-*`, names lower-cased, values as sent (UTF-8 allowed).
    pub metadata: BTreeMap<String, String>,
}

/// Base64 digests as S3 reports them (`x-amz-checksum-*`). `composite` marks a multipart
/// object's checksum of its parts' checksums, which S3 writes with a `-N` suffix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checksums {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub crc64nvme: Option<String>,
    pub composite: bool,
}

impl Checksums {
    pub fn is_empty(&self) -> bool {
        self.crc32.is_none()
            && self.crc32c.is_none()
            && self.sha1.is_none()
            && self.sha256.is_none()
            && self.crc64nvme.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// Without quotes: the body's MD5 in hex, or `md5(part md5s)-N` after a multipart upload.
    pub etag: String,
    /// Milliseconds since the epoch.
    pub modified_ms: u64,
    /// The blob file holding the bytes (`<bucket>/<id[..2]>/<id>` under the store's root).
    pub blob: String,
    #[serde(default)]
    pub headers: ObjectHeaders,
    #[serde(default)]
    pub checksums: Checksums,
    /// Sizes of the parts of a multipart object, in order (GET by `partNumber`); empty otherwise.
    #[serde(default)]
    pub parts: Vec<u64>,
}

impl ObjectMeta {
    pub fn modified(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.modified_ms)
    }

    /// The byte range of part `n` (1-based) of a multipart object; a plain object is one part.
    pub fn part_range(&self, n: u32) -> Option<std::ops::Range<u64>> {
        if self.parts.is_empty() {
            return (n == 1).then_some(0..self.size);
        }
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        let start: u64 = self.parts.get(..i)?.iter().sum();
        Some(start..start + self.parts.get(i)?)
    }

    pub fn parts_count(&self) -> usize {
        self.parts.len().max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub bucket: String,
    pub key: String,
    pub initiated_ms: u64,
    #[serde(default)]
    pub headers: ObjectHeaders,
    /// The checksum algorithm named at CreateMultipartUpload (`CRC32`, `SHA256`, ...).
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    pub size: u64,
    /// MD5 of the part in hex, without quotes.
    pub etag: String,
    pub modified_ms: u64,
    pub blob: String,
    #[serde(default)]
    pub checksums: Checksums,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_ranges_follow_the_part_sizes() {
        let mut m = ObjectMeta {
            size: 12,
            etag: "x-3".into(),
            modified_ms: 0,
            blob: "b".into(),
            headers: ObjectHeaders::default(),
            checksums: Checksums::default(),
            parts: vec![5, 5, 2],
        };
        assert_eq!(m.part_range(1), Some(0..5));
        assert_eq!(m.part_range(3), Some(10..12));
        assert_eq!(m.part_range(0), None);
        assert_eq!(m.part_range(4), None);
        m.parts.clear();
        assert_eq!(m.part_range(1), Some(0..12));
        assert_eq!(m.part_range(2), None);
    }
}
