//! Inputs read as they are needed rather than held whole: the object store's ranged read, which
//! lets FFmpeg read a multi-gigabyte video 32 KiB at a time.

use std::sync::Arc;

use bytes::Bytes;

/// Random access to an input's bytes.
pub trait Source: Send + Sync + std::fmt::Debug {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Read at `offset` into `buf`; 0 only at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl Source for Bytes {
    fn len(&self) -> u64 {
        Bytes::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(Bytes::len(self));
        let n = buf.len().min(Bytes::len(self) - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// `Read + Seek` over a `Source`, each reader with its own position.
#[derive(Debug)]
pub struct SourceReader {
    source: Arc<dyn Source>,
    pos: u64,
}

impl SourceReader {
    pub fn new(source: Arc<dyn Source>) -> Self {
        SourceReader { source, pos: 0 }
    }
    pub fn len(&self) -> u64 {
        self.source.len()
    }
    pub fn is_empty(&self) -> bool {
        self.source.is_empty()
    }
}

impl std::io::Read for SourceReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.source.read_at(self.pos, buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for SourceReader {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.source.len().checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

/// A file read by offset: an object in the local store, or an HTTP body spooled to disk. The length
/// is taken when it is opened; reads never go past it.
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

impl FileSource {
    pub fn new(file: std::fs::File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let left = self.len.saturating_sub(offset);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.file.read_at(&mut buf[..n], offset)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom};

    use super::*;

    #[test]
    fn readers_seek_and_read_like_a_file() {
        let source: Arc<dyn Source> = Arc::new(Bytes::from_static(b"0123456789"));
        let mut r = SourceReader { source, pos: 0 };
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"0123");
        assert_eq!(r.seek(SeekFrom::End(-2)).unwrap(), 8);
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(r.read(&mut buf).unwrap(), 0, "the end reads 0");
        assert!(r.seek(SeekFrom::Current(-20)).is_err());
        assert_eq!(r.seek(SeekFrom::Start(20)).unwrap(), 20);
        assert_eq!(r.read(&mut buf).unwrap(), 0, "past the end reads 0");
    }

    #[test]
    fn a_file_source_stops_at_the_length_it_was_opened_with() {
        use std::io::Write;
        let mut f = tempfile_in_target();
        f.write_all(b"abcdef").unwrap();
        let s = FileSource::new(f.try_clone().unwrap()).unwrap();
        f.write_all(b"ghij").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!((s.len(), s.read_at(2, &mut buf).unwrap()), (6, 4));
        assert_eq!(&buf[..4], b"cdef");
    }

    fn tempfile_in_target() -> std::fs::File {
        let path = std::env::temp_dir().join(format!("weir-source-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
