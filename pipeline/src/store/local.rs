//! Buckets as folders under `<data>/objects/`. Writes go to a temporary file that is synced and
//! then renamed into place, so a reader never sees half an object and a crash leaves the old one.
//! Blocking I/O: call it off the async runtime's threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    BadName(String),
    #[error("no object {key:?} in bucket {bucket:?}")]
    NotFound { bucket: String, key: String },
    #[error("object {key:?} is {size} bytes, over the limit of {limit}")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("storage I/O failed on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// `root` is `<data>/objects`; created if missing.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root).map_err(|source| io(root, source))?;
        Ok(LocalStore {
            root: root.to_path_buf(),
        })
    }

    pub fn create_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let dir = self.bucket_dir(bucket)?;
        std::fs::create_dir_all(&dir).map_err(|source| io(&dir, source))
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, StoreError> {
        super::check_bucket(bucket).map_err(StoreError::BadName)?;
        Ok(self.root.join(bucket))
    }

    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        super::check_key(key).map_err(StoreError::BadName)?;
        Ok(self.bucket_dir(bucket)?.join(key))
    }

    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(bucket, key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| io(&dir, source))?;
        let tmp = dir.join(format!(
            ".weir-tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        write().map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            io(&path, source)
        })
    }

    /// The object's bytes, refusing more than `limit` before reading them.
    pub fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let (file, path, len) = self.open_checked(bucket, key, limit)?;
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| io(&path, source))?;
        if bytes.len() as u64 > limit {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(bytes)
    }

    /// The object opened for ranged reads, refusing more than `limit` bytes. The open file is a
    /// snapshot: an upload replacing the key meanwhile renames a new file into place.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<weir_functions::FileSource, StoreError> {
        let (file, path, _) = self.open_checked(bucket, key, limit)?;
        weir_functions::FileSource::new(file).map_err(|source| io(&path, source))
    }

    /// The object's file, its path and length, refusing more than `limit` bytes.
    fn open_checked(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<(std::fs::File, PathBuf, u64), StoreError> {
        let path = self.path(bucket, key)?;
        let not_found = || StoreError::NotFound {
            bucket: bucket.into(),
            key: key.into(),
        };
        let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => not_found(),
            _ => io(&path, e),
        })?;
        let meta = file.metadata().map_err(|source| io(&path, source))?;
        if !meta.is_file() {
            return Err(not_found());
        }
        if meta.len() > limit {
            return Err(StoreError::TooLarge {
                key: key.into(),
                size: meta.len(),
                limit,
            });
        }
        Ok((file, path, meta.len()))
    }

    /// Keys under `prefix` in `bucket`, sorted, without Weir's temporary files.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.bucket_dir(bucket)?;
        let mut keys = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|source| io(&d, source))?;
            for entry in entries {
                let entry = entry.map_err(|source| io(&d, source))?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|source| io(&path, source))?;
                if kind.is_dir() {
                    stack.push(path);
                } else if kind.is_file()
                    && !entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with(".weir-tmp-")
                {
                    let rel = path
                        .strip_prefix(&dir)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .replace('\\', "/");
                    if rel.starts_with(prefix) {
                        keys.push(rel);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_list_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("objects")).unwrap();
        store.create_bucket("uploads").unwrap();
        store.put("uploads", "a/b/cat 1+2.jpg", b"meow").unwrap();
        store.put("uploads", "a/b/cat 1+2.jpg", b"meow!").unwrap(); // overwrite in place
        store.put("uploads", "z.txt", b"z").unwrap();
        assert_eq!(
            store.get("uploads", "a/b/cat 1+2.jpg", 100).unwrap(),
            b"meow!"
        );
        assert_eq!(
            store.list("uploads", "").unwrap(),
            ["a/b/cat 1+2.jpg", "z.txt"]
        );
        assert_eq!(store.list("uploads", "a/").unwrap(), ["a/b/cat 1+2.jpg"]);
        assert!(matches!(
            store.get("uploads", "a/b/cat 1+2.jpg", 3),
            Err(StoreError::TooLarge { size: 5, .. })
        ));
        assert!(matches!(
            store.get("uploads", "nope", 3),
            Err(StoreError::NotFound { .. })
        ));
        assert!(
            matches!(
                store.get("uploads", "a/b", 3),
                Err(StoreError::NotFound { .. })
            ),
            "a folder is no object"
        );
    }

    #[test]
    fn names_that_escape_are_refused_before_touching_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("objects")).unwrap();
        assert!(matches!(
            store.put("uploads", "../../escaped", b"x"),
            Err(StoreError::BadName(_))
        ));
        assert!(matches!(
            store.put("../x", "k", b"x"),
            Err(StoreError::BadName(_))
        ));
        assert!(matches!(
            store.get("uploads", "/etc/passwd", 10),
            Err(StoreError::BadName(_))
        ));
        assert!(!dir.path().join("escaped").exists());
    }
}
