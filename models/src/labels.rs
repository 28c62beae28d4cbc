//! Label files: one label per line, in the order of the model's output indices.

use std::path::Path;

/// Read a label file; trailing blank lines are ignored, blank lines inside are refused (they
/// would shift every label after them).
pub fn read(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let labels: Vec<String> = text
        .trim_end()
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    if let Some(i) = labels.iter().position(|l| l.is_empty()) {
        return Err(format!("{}: line {} is empty", path.display(), i + 1));
    }
    if labels.is_empty() {
        return Err(format!("{} has no labels", path.display()));
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_lines_and_holes_are_refused() {
        let dir = std::env::temp_dir().join(format!("weir-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("l.txt");
        std::fs::write(&f, "cat\ndog\n\n").unwrap();
        assert_eq!(super::read(&f).unwrap(), vec!["cat", "dog"]);
        std::fs::write(&f, "cat\n\ndog\n").unwrap();
        assert!(super::read(&f).unwrap_err().contains("line 2"));
        std::fs::write(&f, "").unwrap();
        assert!(super::read(&f).is_err());
        assert!(super::read(&dir.join("missing.txt")).is_err());
    }
}
