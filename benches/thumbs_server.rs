//! What the HTTP thumbnail benchmarks share: the example's function, served in process, and this
//! process's CPU time.

/// The example's thumbnail function (256 + 1024, JPEG q80), one input per batch.
pub const CONFIG: &str = "
functions:
  - name: thumbs
    kind: thumbnail
    params: { sizes: [256, 1024], format: jpeg, quality: 80 }
    resources: { batch: { max_size: 1 }, queue: 1024, timeout: 120s }
";

/// This process's user + system CPU time, from /proc (Linux).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // utime and stime are the 12th and 13th fields after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}
