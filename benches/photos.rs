//! The fixture photos the benchmarks run on: those at least `min_side` pixels on their long side.

use std::path::{Path, PathBuf};

#[allow(dead_code)] // each benchmark binary reads a different subset of the fields
pub struct Photo {
    pub name: String,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

pub fn at_least(dir: &Path, min_side: u32) -> anyhow::Result<Vec<Photo>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let mut photos = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path)?;
        let Ok((w, h)) = weir_functions::thumbnail::dimensions(&bytes) else {
            continue;
        };
        if w.max(h) >= min_side {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            photos.push(Photo { name, path, bytes });
        }
    }
    Ok(photos)
}
