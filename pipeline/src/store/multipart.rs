//! Multipart uploads as S3 runs them: part numbers 1 to 10000 in any order and with gaps,
//! re-uploading a part replaces it, an upload id belongs to one bucket and key, completion
//! checks the listed parts (ascending, present, ETags matching, all but the last at least
//! 5 MiB) and leaves the upload untouched when it refuses, and incomplete uploads expire.

use std::io::Write;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::local::{BUCKETS, LocalStore, Written, decode, encode, hex, index_error, io};
use super::meta::{Checksums, ObjectHeaders, ObjectMeta, PartMeta, UploadMeta, now_ms};
use super::{StoreError, check_key};

/// upload id → `UploadMeta` as JSON.
pub(super) const UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("uploads");
/// (upload id, part number) → `PartMeta` as JSON.
pub(super) const PARTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("parts");

/// S3's smallest part, except the last.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PARTS: u32 = 10_000;

/// A part as the client lists it in CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    pub checksums: Checksums,
}

pub(super) fn uploads_in(tx: &WriteTransaction, bucket: &str) -> Result<Vec<String>, StoreError> {
    let t = tx.open_table(UPLOADS).map_err(index_error)?;
    let mut ids = Vec::new();
    for row in t.iter().map_err(index_error)? {
        let (k, v) = row.map_err(index_error)?;
        let u: UploadMeta = decode(v.value())?;
        if u.bucket == bucket {
            ids.push(k.value().to_string());
        }
    }
    Ok(ids)
}

fn no_upload(id: &str) -> StoreError {
    StoreError::NoSuchUpload(id.into())
}

impl LocalStore {
    pub fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        headers: ObjectHeaders,
        checksum_algorithm: Option<String>,
    ) -> Result<String, StoreError> {
        check_key(key).map_err(StoreError::BadName)?;
        if !self.bucket_exists(bucket)? {
            return Err(StoreError::NoSuchBucket(bucket.into()));
        }
        let id = self.new_id();
        let meta = UploadMeta {
            bucket: bucket.into(),
            key: key.into(),
            initiated_ms: now_ms(),
            headers,
            checksum_algorithm,
        };
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        tx.open_table(UPLOADS)
            .map_err(index_error)?
            .insert(id.as_str(), encode(&meta).as_slice())
            .map_err(index_error)?;
        tx.commit().map_err(index_error)?;
        Ok(id)
    }

    /// The upload, when it exists and belongs to this bucket and key.
    pub fn upload(&self, id: &str, bucket: &str, key: &str) -> Result<UploadMeta, StoreError> {
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(UPLOADS).map_err(index_error)?;
        let v = t
            .get(id)
            .map_err(index_error)?
            .ok_or_else(|| no_upload(id))?;
        let u: UploadMeta = decode(v.value())?;
        if u.bucket != bucket || u.key != key {
            return Err(no_upload(id));
        }
        Ok(u)
    }

    pub fn put_part(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        number: u32,
        mut w: Written,
    ) -> Result<PartMeta, StoreError> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(StoreError::InvalidArgument(format!(
                "part number {number} is outside 1 to {MAX_PARTS}"
            )));
        }
        self.upload(id, bucket, key)?;
        let path = self.place(bucket, &mut w.blob)?;
        let part = PartMeta {
            size: w.size,
            etag: w.md5_hex,
            modified_ms: now_ms(),
            blob: w.blob.id.clone(),
            checksums: w.checksums,
        };
        let recorded = (|| {
            let tx = self.inner.db.begin_write().map_err(index_error)?;
            let old = {
                if tx
                    .open_table(UPLOADS)
                    .map_err(index_error)?
                    .get(id)
                    .map_err(index_error)?
                    .is_none()
                {
                    return Err(no_upload(id));
                }
                let mut t = tx.open_table(PARTS).map_err(index_error)?;
                let old: Option<PartMeta> = match t
                    .insert((id, number), encode(&part).as_slice())
                    .map_err(index_error)?
                {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                old
            };
            tx.commit().map_err(index_error)?;
            Ok(old)
        })();
        match recorded {
            Ok(old) => {
                if let Some(old) = old {
                    let _ = std::fs::remove_file(self.blob_path(bucket, &old.blob));
                }
                Ok(part)
            }
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// The upload and its parts in part order.
    pub fn parts(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(UploadMeta, Vec<(u32, PartMeta)>), StoreError> {
        let upload = self.upload(id, bucket, key)?;
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(PARTS).map_err(index_error)?;
        let mut parts = Vec::new();
        for row in t.range((id, 0)..=(id, u32::MAX)).map_err(index_error)? {
            let (k, v) = row.map_err(index_error)?;
            parts.push((k.value().1, decode(v.value())?));
        }
        Ok((upload, parts))
    }

    /// Joins the listed parts into the object. Any refusal leaves the upload as it was.
    pub fn complete_upload(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        listed: &[CompletedPart],
    ) -> Result<ObjectMeta, StoreError> {
        let (upload, parts) = self.parts(id, bucket, key)?;
        let chosen = choose_parts(&parts, listed)?;
        let mut blob = self.incoming();
        let mut file = std::fs::File::create(&blob.path).map_err(|s| io(&blob.path, s))?;
        let mut md5s = Vec::with_capacity(16 * chosen.len());
        for p in &chosen {
            let from = self.blob_path(bucket, &p.blob);
            let mut part = std::fs::File::open(&from).map_err(|s| io(&from, s))?;
            std::io::copy(&mut part, &mut file).map_err(|s| io(&blob.path, s))?;
            md5s.extend(unhex(&p.etag));
        }
        file.flush().map_err(|s| io(&blob.path, s))?;
        drop(file);
        let to = self.place(bucket, &mut blob)?;
        use s3s::crypto::Checksum;
        let meta = ObjectMeta {
            size: chosen.iter().map(|p| p.size).sum(),
            etag: format!(
                "{}-{}",
                hex(s3s::crypto::Md5::checksum(&md5s)),
                chosen.len()
            ),
            modified_ms: now_ms(),
            blob: blob.id.clone(),
            headers: upload.headers.clone(),
            checksums: super::checksum::composite(upload.checksum_algorithm.as_deref(), &chosen),
            parts: chosen.iter().map(|p| p.size).collect(),
        };
        match self.finish(id, bucket, key, &meta, &parts) {
            Ok(old) => {
                for (_, p) in &parts {
                    let _ = std::fs::remove_file(self.blob_path(bucket, &p.blob));
                }
                if let Some(old) = old {
                    let _ = std::fs::remove_file(self.blob_path(bucket, &old.blob));
                }
                Ok(meta)
            }
            Err(e) => {
                let _ = std::fs::remove_file(to);
                Err(e)
            }
        }
    }

    /// One commit: the object recorded, the upload and its parts gone; refused when the upload
    /// changed since its parts were read (aborted, or a part uploaded again).
    fn finish(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        meta: &ObjectMeta,
        read: &[(u32, PartMeta)],
    ) -> Result<Option<ObjectMeta>, StoreError> {
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        let old = {
            let mut uploads = tx.open_table(UPLOADS).map_err(index_error)?;
            if uploads.remove(id).map_err(index_error)?.is_none() {
                return Err(no_upload(id));
            }
            let mut parts = tx.open_table(PARTS).map_err(index_error)?;
            let mut now = Vec::with_capacity(read.len());
            let mut gone = parts
                .extract_from_if((id, 0)..=(id, u32::MAX), |_, _| true)
                .map_err(index_error)?;
            for row in gone.by_ref() {
                let (k, v) = row.map_err(index_error)?;
                now.push((k.value().1, decode::<PartMeta>(v.value())?));
            }
            drop(gone);
            if now != read {
                return Err(StoreError::InvalidPart(
                    "a part was uploaded again while the upload was completed; retry".into(),
                ));
            }
            if tx
                .open_table(BUCKETS)
                .map_err(index_error)?
                .get(bucket)
                .map_err(index_error)?
                .is_none()
            {
                return Err(StoreError::NoSuchBucket(bucket.into()));
            }
            let mut objects = tx.open_table(super::local::OBJECTS).map_err(index_error)?;
            let old: Option<ObjectMeta> = match objects
                .insert((bucket, key), encode(meta).as_slice())
                .map_err(index_error)?
            {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            old
        };
        tx.commit().map_err(index_error)?;
        Ok(old)
    }

    pub fn abort_upload(&self, id: &str, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.upload(id, bucket, key)?;
        self.drop_upload(id, bucket)
    }

    fn drop_upload(&self, id: &str, bucket: &str) -> Result<(), StoreError> {
        let tx = self.inner.db.begin_write().map_err(index_error)?;
        let mut blobs = Vec::new();
        {
            let mut uploads = tx.open_table(UPLOADS).map_err(index_error)?;
            if uploads.remove(id).map_err(index_error)?.is_none() {
                return Err(no_upload(id));
            }
            let mut parts = tx.open_table(PARTS).map_err(index_error)?;
            let gone = parts
                .extract_from_if((id, 0)..=(id, u32::MAX), |_, _| true)
                .map_err(index_error)?;
            for row in gone {
                let (_, v) = row.map_err(index_error)?;
                let p: PartMeta = decode(v.value())?;
                blobs.push(p.blob);
            }
        }
        tx.commit().map_err(index_error)?;
        for b in blobs {
            let _ = std::fs::remove_file(self.blob_path(bucket, &b));
        }
        Ok(())
    }

    /// The bucket's unfinished uploads, by key then start time.
    pub fn uploads(&self, bucket: &str) -> Result<Vec<(String, UploadMeta)>, StoreError> {
        let tx = self.inner.db.begin_read().map_err(index_error)?;
        let t = tx.open_table(UPLOADS).map_err(index_error)?;
        let mut out = Vec::new();
        for row in t.iter().map_err(index_error)? {
            let (k, v) = row.map_err(index_error)?;
            let u: UploadMeta = decode(v.value())?;
            if u.bucket == bucket {
                out.push((k.value().to_string(), u));
            }
        }
        out.sort_by(|a, b| (&a.1.key, a.1.initiated_ms).cmp(&(&b.1.key, b.1.initiated_ms)));
        Ok(out)
    }

    /// Aborts every upload started more than `max_age` ago; gives how many.
    pub fn expire_uploads(&self, max_age: std::time::Duration) -> Result<usize, StoreError> {
        let cutoff = now_ms().saturating_sub(max_age.as_millis() as u64);
        let mut stale = Vec::new();
        {
            let tx = self.inner.db.begin_read().map_err(index_error)?;
            let t = tx.open_table(UPLOADS).map_err(index_error)?;
            for row in t.iter().map_err(index_error)? {
                let (k, v) = row.map_err(index_error)?;
                let u: UploadMeta = decode(v.value())?;
                if u.initiated_ms <= cutoff {
                    stale.push((k.value().to_string(), u.bucket));
                }
            }
        }
        let mut n = 0;
        for (id, bucket) in stale {
            match self.drop_upload(&id, &bucket) {
                Ok(()) => n += 1,
                Err(StoreError::NoSuchUpload(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// The stored parts that the client's list names, checked as S3 checks them.
fn choose_parts(
    stored: &[(u32, PartMeta)],
    listed: &[CompletedPart],
) -> Result<Vec<PartMeta>, StoreError> {
    if listed.is_empty() {
        return Err(StoreError::InvalidArgument(
            "a completion lists at least one part".into(),
        ));
    }
    if listed.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(StoreError::InvalidPartOrder);
    }
    let mut chosen = Vec::with_capacity(listed.len());
    for (i, want) in listed.iter().enumerate() {
        let Some((_, p)) = stored.iter().find(|(n, _)| *n == want.number) else {
            return Err(StoreError::InvalidPart(format!(
                "part {} was never uploaded",
                want.number
            )));
        };
        if want.etag.trim_matches('"') != p.etag {
            return Err(StoreError::InvalidPart(format!(
                "part {}'s ETag {} is not the uploaded part's {}",
                want.number, want.etag, p.etag
            )));
        }
        if !super::checksum::agrees(&want.checksums, &p.checksums) {
            return Err(StoreError::InvalidPart(format!(
                "part {}'s checksum is not the uploaded part's",
                want.number
            )));
        }
        if i + 1 < listed.len() && p.size < MIN_PART_SIZE {
            return Err(StoreError::EntityTooSmall {
                part: want.number,
                size: p.size,
            });
        }
        chosen.push(p.clone());
    }
    Ok(chosen)
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}
