//! Inputs of functions that stream (video) go to an anonymous temporary file, written 1 MiB at a
//! time off the async threads, instead of into memory: a 2 GB upload (an HTTP body, or an object
//! read from a remote S3 store) costs disk, not RAM, and the function reads it by offset like an
//! object in the local store.

use std::io::Write;
use std::path::Path;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use weir_functions::FileSource;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the body is larger than {0} bytes")]
    TooLarge(u64),
    #[error("could not read the request body: {0}")]
    Read(String),
    #[error("could not hold the request body on disk: {0}")]
    Disk(std::io::Error),
}

/// Bytes gathered before each write.
const CHUNK: usize = 1 << 20;

/// Writes an HTTP request body (at most `limit` bytes) to a temporary file in `dir`.
pub async fn spool(body: Body, limit: u64, dir: &Path) -> Result<FileSource, SpoolError> {
    let chunks = body
        .into_data_stream()
        .map(|r| r.map_err(|e| read_error(&e)));
    to_file(std::pin::pin!(chunks), limit, dir).await
}

/// Writes `chunks` (at most `limit` bytes) to a temporary file in `dir`, unlinked from the
/// start, so nothing is left behind whatever happens next.
pub async fn to_file(
    mut chunks: impl Stream<Item = Result<Bytes, SpoolError>> + Unpin,
    limit: u64,
    dir: &Path,
) -> Result<FileSource, SpoolError> {
    let dir = dir.to_path_buf();
    let mut file = blocking(move || tempfile::tempfile_in(dir)).await?;
    let (mut seen, mut buf) = (0u64, Vec::with_capacity(CHUNK));
    while let Some(data) = chunks.next().await {
        let data = data?;
        seen += data.len() as u64;
        if seen > limit {
            return Err(SpoolError::TooLarge(limit));
        }
        buf.extend_from_slice(&data);
        if buf.len() >= CHUNK {
            (file, buf) = write(file, buf).await?;
        }
    }
    (file, _) = write(file, buf).await?;
    FileSource::new(file).map_err(SpoolError::Disk)
}

fn read_error(e: &axum::Error) -> SpoolError {
    if crate::http::invoke::is_length_limit(e) {
        SpoolError::TooLarge(0)
    } else {
        SpoolError::Read(e.to_string())
    }
}

async fn write(
    mut file: std::fs::File,
    mut buf: Vec<u8>,
) -> Result<(std::fs::File, Vec<u8>), SpoolError> {
    blocking(move || {
        file.write_all(&buf)?;
        buf.clear();
        Ok((file, buf))
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SpoolError::Disk(std::io::Error::other(e.to_string())))?
        .map_err(SpoolError::Disk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_functions::Source;

    #[tokio::test]
    async fn bodies_land_whole_on_disk_and_oversized_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3 * CHUNK + 7).map(|i| (i % 251) as u8).collect();
        let src = spool(Body::from(bytes.clone()), 10 * CHUNK as u64, dir.path())
            .await
            .unwrap();
        assert_eq!(src.len(), bytes.len() as u64);
        let mut back = vec![0u8; 100];
        assert_eq!(src.read_at(2 * CHUNK as u64, &mut back).unwrap(), 100);
        assert_eq!(back, bytes[2 * CHUNK..2 * CHUNK + 100]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
        let e = spool(Body::from(bytes), CHUNK as u64, dir.path())
            .await
            .unwrap_err();
        assert!(matches!(e, SpoolError::TooLarge(_)), "{e}");
    }
}
