//! Where an output came from, written as user metadata on every output on every store: the
//! reprocessing work reads it to skip what is already up to date (same source etag, same spec).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::Metadata;

pub const SOURCE_BUCKET: &str = "weir-source-bucket";
/// Percent-encoded (UTF-8), `/` kept: metadata values travel as HTTP headers, which carry
/// neither arbitrary Unicode nor control characters.
pub const SOURCE_KEY: &str = "weir-source-key";
pub const SOURCE_ETAG: &str = "weir-source-etag";
pub const FUNCTION: &str = "weir-function";
/// `FunctionSpec::output_hash`: changes when the kind, its params or the output change.
pub const SPEC_HASH: &str = "weir-spec-hash";

/// Everything but RFC 3986's unreserved characters and `/` (S3 leaves the separator readable,
/// in listings with `encoding-type=url` as here).
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The source object and the function that made an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// Without quotes; empty when the event did not carry one.
    pub etag: &'a str,
    pub function: &'a str,
    pub spec_hash: &'a str,
}

impl Provenance<'_> {
    pub fn metadata(&self) -> Metadata {
        [
            (SOURCE_BUCKET, self.bucket.to_string()),
            (SOURCE_KEY, encode_key(self.key)),
            (SOURCE_ETAG, self.etag.trim_matches('"').to_string()),
            (FUNCTION, self.function.to_string()),
            (SPEC_HASH, self.spec_hash.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// A key percent-encoded as S3 encodes keys in listings.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_with_slashes_kept() {
        assert_eq!(encode_key("photos/a b+ü.jpg"), "photos/a%20b%2B%C3%BC.jpg");
        assert_eq!(encode_key("x/y-z_1.~"), "x/y-z_1.~");
        let m = Provenance {
            bucket: "uploads",
            key: "v/clip 1.mp4",
            etag: "\"abc\"",
            function: "frames",
            spec_hash: "0123",
        }
        .metadata();
        assert_eq!(m[SOURCE_KEY], "v/clip%201.mp4");
        assert_eq!(m[SOURCE_ETAG], "abc");
        assert_eq!(m.len(), 5);
    }
}
