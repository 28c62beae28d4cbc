//! Buckets in the index: made, listed, and removed only when nothing is left in them (no
//! object and no unfinished multipart upload), as S3 does.

use redb::{ReadableDatabase, ReadableTable};

use super::local::{BUCKETS, LocalStore, OBJECTS, index_error};
use super::meta::now_ms;
use super::{StoreError, check_bucket};

impl LocalStore {
    /// Creates the bucket; `false` when it was already there.
    pub fn create_bucket(&self, bucket: &str) -> Result<bool, StoreError> {
        check_bucket(bucket).map_err(StoreError::BadName)?;
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        let created = {
            let mut t = tx.open_table(BUCKETS).map_err(index_error)?;
            let exists = t.get(bucket).map_err(index_error)?.is_some();
            if !exists {
                t.insert(bucket, now_ms()).map_err(index_error)?;
            }
            !exists
        };
        tx.commit().map_err(index_error)?;
        Ok(created)
    }

    pub fn bucket_exists(&self, bucket: &str) -> Result<bool, StoreError> {
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(BUCKETS).map_err(index_error)?;
        Ok(t.get(bucket).map_err(index_error)?.is_some())
    }

    /// Every bucket with its creation time (ms), by name.
    pub fn buckets(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(BUCKETS).map_err(index_error)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(index_error)? {
            let (k, v) = row.map_err(index_error)?;
            out.push((k.value().to_string(), v.value()));
        }
        Ok(out)
    }

    /// Removes an empty bucket; one with objects or unfinished uploads is `BucketNotEmpty`.
    pub fn delete_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        {
            let mut buckets = tx.open_table(BUCKETS).map_err(index_error)?;
            if buckets.get(bucket).map_err(index_error)?.is_none() {
                return Err(StoreError::NoSuchBucket(bucket.into()));
            }
            let objects = tx.open_table(OBJECTS).map_err(index_error)?;
            let mut under = objects.range((bucket, "")..).map_err(index_error)?;
            let has_object = match under.next() {
                Some(row) => row.map_err(index_error)?.0.value().0 == bucket,
                None => false,
            };
            if has_object || !super::multipart::uploads_in(&tx, bucket)?.is_empty() {
                return Err(StoreError::BucketNotEmpty(bucket.into()));
            }
            buckets.remove(bucket).map_err(index_error)?;
        }
        tx.commit().map_err(index_error)?;
        let _ = std::fs::remove_dir_all(self.inner.root.join(bucket));
        Ok(())
    }
}
