//! The `ObjectStore` seam's local implementation and the keys outputs are written under.
//! (Groundwork for the storage issue: the S3 implementation and the bus come with it.)

mod local;
mod template;

pub use local::{LocalStore, StoreError};
pub use template::{KeyTemplate, TemplateError};

/// A key is safe when it cannot leave its bucket on a file system: no empty, `.` or `..`
/// segment, no leading `/`, no NUL or backslash, and at most 1024 bytes (S3's own limit).
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 1024 {
        return Err(format!("a key has 1 to 1024 bytes, this one {}", key.len()));
    }
    if key.contains(['\0', '\\']) {
        return Err("a key may not contain NUL or a backslash".into());
    }
    if key.starts_with('/')
        || key
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "the key {key:?} has an empty, '.' or '..' segment or starts with '/'"
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
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_their_bucket_are_refused() {
        for ok in ["a.jpg", "photos/2026/cat 1+2.jpg", "é/ü.png", "a..b/c"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            "a/./b",
            "a\0b",
            "a\\b",
            "x/..",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"k".repeat(1025)).is_err());
    }

    #[test]
    fn bucket_names_follow_s3() {
        assert!(check_bucket("uploads").is_ok() && check_bucket("my.bucket-2").is_ok());
        for bad in ["ab", "Uploads", "-x-", "a..b", "has space", "objects/x"] {
            assert!(check_bucket(bad).is_err(), "{bad}");
        }
    }
}
