//! The local object store: object bytes in blob files named by a fresh id, and an index (redb)
//! from (bucket, key) to what S3 reports about the object. A key never becomes a file name, so
//! any key S3 allows works (1 to 1024 bytes, `a` beside `a/b`, segments over the file system's
//! 255-byte limit), and listings come out of the index in S3's order. An object becomes visible,
//! or is replaced, only by the index commit that names its new blob, after the blob is synced:
//! a reader sees the old object or the new one, never a part of either. Blocking I/O: call it
//! off the async runtime's threads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::list::{ListPage, ListQuery, page};
use super::meta::{Checksums, ObjectHeaders, ObjectMeta, now_ms};
use super::{StoreError, check_bucket, check_key};

/// bucket → created (ms since the epoch).
pub(super) const BUCKETS: TableDefinition<&str, u64> = TableDefinition::new("buckets");
/// (bucket, key) → `ObjectMeta` as JSON.
pub(super) const OBJECTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("objects");

/// Where the index lives under the store's root; bucket names never start with a dot.
const INDEX: &str = ".index.redb";
/// Blobs being written; whatever is here at start belongs to a write that never finished.
const INCOMING: &str = ".incoming";

#[derive(Clone)]
pub struct LocalStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) root: PathBuf,
    pub(super) db: Database,
    next: AtomicU64,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// A blob file being written; removed when dropped before it is committed.
pub struct Incoming {
    pub id: String,
    pub path: PathBuf,
    kept: bool,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A finished blob with what was measured while it was written.
pub struct Written {
    pub blob: Incoming,
    pub size: u64,
    pub md5_hex: String,
    pub checksums: Checksums,
}

/// S3's conditional writes: `If-None-Match: *` and `If-Match: <etag>`.
#[derive(Debug, Clone, Default)]
pub struct PutCondition {
    pub if_none_match_any: bool,
    pub if_match: Option<String>,
}

pub(super) fn index_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Index(e.into().to_string())
}

pub(super) fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Index(format!("a damaged record: {e}")))
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

impl LocalStore {
    /// `root` is `<data>/objects`; created if missing. A folder of the layout before the index
    /// (one file per key) is imported on first open.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let incoming = root.join(INCOMING);
        std::fs::create_dir_all(&incoming).map_err(|source| io(&incoming, source))?;
        for e in std::fs::read_dir(&incoming)
            .map_err(|s| io(&incoming, s))?
            .flatten()
        {
            let _ = std::fs::remove_file(e.path());
        }
        let index = root.join(INDEX);
        let fresh = !index.exists();
        let db = Database::create(&index).map_err(index_error)?;
        let tx = db.begin_write().map_err(index_error)?;
        tx.open_table(BUCKETS).map_err(index_error)?;
        tx.open_table(OBJECTS).map_err(index_error)?;
        tx.open_table(super::multipart::UPLOADS)
            .map_err(index_error)?;
        tx.open_table(super::multipart::PARTS)
            .map_err(index_error)?;
        tx.commit().map_err(index_error)?;
        let store = LocalStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                db,
                next: AtomicU64::new(0),
            }),
        };
        if fresh {
            super::migrate::import_folders(&store)?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// A new blob id: time, process and a counter, so no two writes ever share one.
    pub(super) fn new_id(&self) -> String {
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        format!("{nanos:016x}{:08x}{n:08x}", std::process::id())
    }

    pub(super) fn blob_path(&self, bucket: &str, id: &str) -> PathBuf {
        self.inner
            .root
            .join(bucket)
            .join(&id[..2.min(id.len())])
            .join(id)
    }

    /// A fresh file to write a blob into.
    pub fn incoming(&self) -> Incoming {
        let id = self.new_id();
        let path = self.inner.root.join(INCOMING).join(&id);
        Incoming {
            id,
            path,
            kept: false,
        }
    }

    /// Sync the blob and move it under its bucket; from here its path is `blob_path`.
    pub(super) fn place(&self, bucket: &str, blob: &mut Incoming) -> Result<PathBuf, StoreError> {
        let to = self.blob_path(bucket, &blob.id);
        let dir = to.parent().unwrap_or(&self.inner.root).to_path_buf();
        let run = || -> std::io::Result<()> {
            std::fs::File::open(&blob.path)?.sync_all()?;
            std::fs::create_dir_all(&dir)?;
            std::fs::rename(&blob.path, &to)?;
            std::fs::File::open(&dir)?.sync_all()
        };
        run().map_err(|source| io(&to, source))?;
        blob.kept = true;
        Ok(to)
    }

    /// Writes `bytes` as the object (Weir's own outputs).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) -> Result<ObjectMeta, StoreError> {
        self.put_with(bucket, key, bytes, ObjectHeaders::default())
    }

    pub fn put_with(
        &self,
        bucket: &str,
        key: &str,
        bytes: &[u8],
        headers: ObjectHeaders,
    ) -> Result<ObjectMeta, StoreError> {
        use s3s::crypto::Checksum;
        check_key(key).map_err(StoreError::BadName)?;
        let blob = self.incoming();
        std::fs::write(&blob.path, bytes).map_err(|s| io(&blob.path, s))?;
        let written = Written {
            blob,
            size: bytes.len() as u64,
            md5_hex: hex(s3s::crypto::Md5::checksum(bytes)),
            checksums: Checksums::default(),
        };
        self.commit(bucket, key, written, headers, &PutCondition::default())
    }

    /// Makes a written blob the object at `key`, atomically, if `cond` holds.
    pub fn commit(
        &self,
        bucket: &str,
        key: &str,
        mut w: Written,
        headers: ObjectHeaders,
        cond: &PutCondition,
    ) -> Result<ObjectMeta, StoreError> {
        check_bucket(bucket).map_err(StoreError::BadName)?;
        check_key(key).map_err(StoreError::BadName)?;
        let path = self.place(bucket, &mut w.blob)?;
        let meta = ObjectMeta {
            size: w.size,
            etag: w.md5_hex,
            modified_ms: now_ms(),
            blob: w.blob.id.clone(),
            headers,
            checksums: w.checksums,
            parts: Vec::new(),
        };
        match self.swap(bucket, key, &meta, cond) {
            Ok(old) => {
                if let Some(old) = old {
                    let _ = std::fs::remove_file(self.blob_path(bucket, &old.blob));
                }
                Ok(meta)
            }
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Records `meta` at `key` in one commit; gives back the object it replaced.
    pub(super) fn swap(
        &self,
        bucket: &str,
        key: &str,
        meta: &ObjectMeta,
        cond: &PutCondition,
    ) -> Result<Option<ObjectMeta>, StoreError> {
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        let old = {
            let buckets = tx.open_table(BUCKETS).map_err(index_error)?;
            if buckets.get(bucket).map_err(index_error)?.is_none() {
                return Err(StoreError::NoSuchBucket(bucket.into()));
            }
            let mut t = tx.open_table(OBJECTS).map_err(index_error)?;
            let old: Option<ObjectMeta> = match t.get((bucket, key)).map_err(index_error)? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            check_condition(old.as_ref(), cond)?;
            t.insert((bucket, key), encode(meta).as_slice())
                .map_err(index_error)?;
            old
        };
        tx.commit().map_err(index_error)?;
        Ok(old)
    }

    pub fn head(&self, bucket: &str, key: &str) -> Result<ObjectMeta, StoreError> {
        check_key(key).map_err(StoreError::BadName)?;
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(OBJECTS).map_err(index_error)?;
        if let Some(v) = t.get((bucket, key)).map_err(index_error)? {
            return decode(v.value());
        }
        let buckets = tx.open_table(BUCKETS).map_err(index_error)?;
        if buckets.get(bucket).map_err(index_error)?.is_none() {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        Err(StoreError::NotFound {
            bucket: bucket.into(),
            key: key.into(),
        })
    }

    /// The object's record and its blob opened: a snapshot that a replacement meanwhile does
    /// not change (the old blob is unlinked, not truncated).
    pub fn open_blob(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<(ObjectMeta, std::fs::File), StoreError> {
        let mut tries = 0;
        loop {
            let meta = self.head(bucket, key)?;
            let path = self.blob_path(bucket, &meta.blob);
            match std::fs::File::open(&path) {
                Ok(f) => return Ok((meta, f)),
                // Replaced between the look-up and the open: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                Err(e) => return Err(io(&path, e)),
            }
        }
    }

    /// The object's bytes, refusing more than `limit` before reading them.
    pub fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        self.read(bucket, key, limit).map(|(_, bytes)| bytes)
    }

    /// The object's record and its bytes, refusing more than `limit` before reading them.
    pub fn read(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<(ObjectMeta, Vec<u8>), StoreError> {
        let (meta, file) = self.open_blob(bucket, key)?;
        too_large(key, meta.size, limit)?;
        let mut bytes = Vec::with_capacity(meta.size as usize);
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(|s| io(&self.blob_path(bucket, &meta.blob), s))?;
        Ok((meta, bytes))
    }

    /// The object's record and the object opened for ranged reads, refusing more than `limit`
    /// bytes.
    pub fn open_object(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<(ObjectMeta, weir_functions::FileSource), StoreError> {
        let (meta, file) = self.open_blob(bucket, key)?;
        too_large(key, meta.size, limit)?;
        let source = weir_functions::FileSource::new(file)
            .map_err(|s| io(&self.blob_path(bucket, &meta.blob), s))?;
        Ok((meta, source))
    }

    /// Removes the object; removing one that is not there succeeds, as in S3.
    pub fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        check_key(key).map_err(StoreError::BadName)?;
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        let old = {
            let buckets = tx.open_table(BUCKETS).map_err(index_error)?;
            if buckets.get(bucket).map_err(index_error)?.is_none() {
                return Err(StoreError::NoSuchBucket(bucket.into()));
            }
            let mut t = tx.open_table(OBJECTS).map_err(index_error)?;
            let old: Option<ObjectMeta> = match t.remove((bucket, key)).map_err(index_error)? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            old
        };
        tx.commit().map_err(index_error)?;
        if let Some(old) = old {
            let _ = std::fs::remove_file(self.blob_path(bucket, &old.blob));
        }
        Ok(())
    }

    /// One page of the bucket's listing.
    pub fn list_page(
        &self,
        bucket: &str,
        q: &ListQuery,
    ) -> Result<ListPage<ObjectMeta>, StoreError> {
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let buckets = tx.open_table(BUCKETS).map_err(index_error)?;
        if buckets.get(bucket).map_err(index_error)?.is_none() {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        let t = tx.open_table(OBJECTS).map_err(index_error)?;
        page(q, |from, inclusive| {
            for row in t.range((bucket, from)..).map_err(index_error)? {
                let (k, v) = row.map_err(index_error)?;
                let (b, key) = k.value();
                if b != bucket {
                    return Ok(None);
                }
                if inclusive || key != from {
                    return Ok(Some((key.to_string(), decode(v.value())?)));
                }
            }
            Ok(None)
        })
    }

    /// Every key under `prefix`, in order (tests and small buckets; listings page).
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut after = None;
        loop {
            let q = ListQuery {
                prefix: prefix.into(),
                delimiter: None,
                after: after.take(),
                max_keys: 1000,
            };
            let p = self.list_page(bucket, &q)?;
            keys.extend(p.objects.into_iter().map(|(k, _)| k));
            if !p.truncated {
                return Ok(keys);
            }
            after = p.last;
        }
    }
}

fn too_large(key: &str, size: u64, limit: u64) -> Result<(), StoreError> {
    if size > limit {
        return Err(StoreError::TooLarge {
            key: key.into(),
            size,
            limit,
        });
    }
    Ok(())
}

fn check_condition(old: Option<&ObjectMeta>, cond: &PutCondition) -> Result<(), StoreError> {
    if cond.if_none_match_any && old.is_some() {
        return Err(StoreError::PreconditionFailed("the object already exists"));
    }
    if let Some(want) = &cond.if_match {
        let matches = old.is_some_and(|o| want == "*" || want.trim_matches('"') == o.etag);
        if !matches {
            return Err(StoreError::PreconditionFailed(
                "the object's ETag does not match",
            ));
        }
    }
    Ok(())
}

pub fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
