//! `LocalStore` through the `ObjectStore` seam: the same blobs and index the built-in S3 endpoint
//! serves, with the blocking I/O moved to tokio's blocking threads.

use std::sync::Arc;

use bytes::Bytes;
use weir_functions::Source;

use super::seam::{
    Fetched, Head, ObjectInfo, ObjectStore, Page, PageRequest, PutOptions, page_size,
};
use super::{ListQuery, LocalStore, ObjectHeaders, ObjectMeta, StoreError};

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Index(task_failed(&e)))?
}

/// Why a blocking task did not finish (it panicked).
fn task_failed(e: &tokio::task::JoinError) -> String {
    format!("a storage task failed: {e}")
}

fn info(key: String, m: &ObjectMeta) -> ObjectInfo {
    ObjectInfo {
        key,
        size: m.size,
        etag: m.etag.clone(),
        modified_ms: m.modified_ms,
    }
}

impl LocalStore {
    /// `open_object` as the seam gives it. Blocking I/O.
    fn open_fetched(
        &self,
        bucket: &str,
        key: String,
        limit: u64,
    ) -> Result<Fetched<Arc<dyn Source>>, StoreError> {
        let (meta, file) = self.open_object(bucket, &key, limit)?;
        Ok(Fetched {
            info: info(key, &meta),
            body: Arc::new(file) as Arc<dyn Source>,
        })
    }
}

#[async_trait::async_trait]
impl ObjectStore for LocalStore {
    async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let (s, b) = (self.clone(), bucket.to_string());
        blocking(move || s.create_bucket(&b).map(drop)).await
    }

    async fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Fetched<Bytes>, StoreError> {
        let (s, b, k) = (self.clone(), bucket.to_string(), key.to_string());
        blocking(move || {
            let (meta, bytes) = s.read(&b, &k, limit)?;
            Ok(Fetched {
                info: info(k, &meta),
                body: Bytes::from(bytes),
            })
        })
        .await
    }

    async fn open(
        &self,
        bucket: &str,
        key: &str,
        limit: u64,
    ) -> Result<Fetched<Arc<dyn Source>>, StoreError> {
        let (s, b, k) = (self.clone(), bucket.to_string(), key.to_string());
        blocking(move || s.open_fetched(&b, k, limit)).await
    }

    async fn open_many(
        &self,
        objects: &[(&str, &str)],
        limit: u64,
    ) -> Option<Vec<Result<Fetched<Arc<dyn Source>>, StoreError>>> {
        let s = self.clone();
        let owned: Vec<(String, String)> = objects
            .iter()
            .map(|(b, k)| (b.to_string(), k.to_string()))
            .collect();
        let opened = tokio::task::spawn_blocking(move || {
            owned
                .into_iter()
                .map(|(b, k)| s.open_fetched(&b, k, limit))
                .collect()
        })
        .await;
        // A blocking task that failed (it panicked) is a failure of every open it held.
        Some(opened.unwrap_or_else(|e| {
            let e = task_failed(&e);
            objects
                .iter()
                .map(|_| Err(StoreError::Index(e.clone())))
                .collect()
        }))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        options: &PutOptions,
    ) -> Result<ObjectInfo, StoreError> {
        let headers = ObjectHeaders {
            content_type: options.content_type.clone(),
            metadata: options
                .metadata
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            ..ObjectHeaders::default()
        };
        let (s, b, k) = (self.clone(), bucket.to_string(), key.to_string());
        blocking(move || {
            let meta = s.put_with(&b, &k, &body, headers)?;
            Ok(info(k, &meta))
        })
        .await
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<Head, StoreError> {
        let (s, b, k) = (self.clone(), bucket.to_string(), key.to_string());
        blocking(move || {
            let meta = s.head(&b, &k)?;
            Ok(Head {
                info: info(k, &meta),
                content_type: meta.headers.content_type.clone(),
                metadata: meta.headers.metadata,
            })
        })
        .await
    }

    async fn list(&self, bucket: &str, request: &PageRequest) -> Result<Page, StoreError> {
        let query = ListQuery {
            prefix: request.prefix.clone(),
            delimiter: None,
            after: request.start_after.clone(),
            max_keys: page_size(request.max),
        };
        let (s, b) = (self.clone(), bucket.to_string());
        blocking(move || {
            let page = s.list_page(&b, &query)?;
            Ok(Page {
                next: if page.truncated { page.last } else { None },
                objects: page.objects.into_iter().map(|(k, m)| info(k, &m)).collect(),
            })
        })
        .await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let (s, b, k) = (self.clone(), bucket.to_string(), key.to_string());
        blocking(move || s.delete(&b, &k)).await
    }
}
