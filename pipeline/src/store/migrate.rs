//! The layout before the index kept one file per key under `<bucket>/`. On the first open of a
//! store with no index, those files are imported: each becomes a blob, and its key its path.

use std::path::Path;

use super::local::{LocalStore, PutCondition, Written, hex, io};
use super::meta::{Checksums, ObjectHeaders};
use super::{StoreError, check_bucket};
use std::io::Read;

pub(super) fn import_folders(store: &LocalStore) -> Result<(), StoreError> {
    let root = store.root().to_path_buf();
    let entries = std::fs::read_dir(&root).map_err(|s| io(&root, s))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.path().is_dir() || check_bucket(&name).is_err() {
            continue;
        }
        let mut files = Vec::new();
        collect(&e.path(), &mut files).map_err(|s| io(&e.path(), s))?;
        if files.is_empty() && store.bucket_exists(&name)? {
            continue;
        }
        store.create_bucket(&name)?;
        let mut n = 0;
        for f in files {
            let rel = f.strip_prefix(e.path()).unwrap_or(&f).to_string_lossy();
            let key = rel.replace('\\', "/");
            if super::check_key(&key).is_err()
                || key
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with(".weir-tmp-"))
            {
                continue;
            }
            import(store, &name, &key, &f)?;
            n += 1;
        }
        if n > 0 {
            tracing::info!(bucket = %name, objects = n, "imported the objects of the folder layout into the index");
        }
    }
    Ok(())
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            collect(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn import(store: &LocalStore, bucket: &str, key: &str, file: &Path) -> Result<(), StoreError> {
    let (size, md5_hex) = md5_file(file).map_err(|s| io(file, s))?;
    let blob = store.incoming();
    std::fs::rename(file, &blob.path).map_err(|s| io(file, s))?;
    let written = Written {
        blob,
        size,
        md5_hex,
        checksums: Checksums::default(),
    };
    store.commit(
        bucket,
        key,
        written,
        ObjectHeaders::default(),
        &PutCondition::default(),
    )?;
    if let Some(parent) = file.parent() {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

fn md5_file(path: &Path) -> std::io::Result<(u64, String)> {
    use s3s::crypto::Checksum;
    let mut f = std::fs::File::open(path)?;
    let (mut md5, mut buf, mut size) = (s3s::crypto::Md5::new(), vec![0u8; 1 << 20], 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hex(md5.finalize())));
        }
        md5.update(&buf[..n]);
        size += n as u64;
    }
}
