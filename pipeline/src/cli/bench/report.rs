//! What a `weir bench` run writes: `results.json` (one record per grid point, beside the machine,
//! the versions and the run's settings), `results.md` (the same as a table), and the comparison
//! of two result files. The JSON's shape is `docs/bench-results.schema.json`; keep them together.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The schema's name, so a file from another tool (or a future shape) is refused by `compare`.
pub const SCHEMA: &str = "weir-bench/1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Results {
    pub schema: String,
    /// What was measured: `{kind: model|function, name}`.
    pub target: Target,
    pub machine: Machine,
    pub versions: Versions,
    pub config: RunConfig,
    pub records: Vec<Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Target {
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub hostname: String,
    pub os: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    /// The GPUs this machine's driver shows (name per index), empty without one.
    pub gpus: Vec<String>,
    /// The CUDA driver's version, or why there is none.
    pub driver: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Versions {
    /// This `weir` binary's version.
    pub weir: String,
    /// What the server answered at `/v2` (its name and version).
    pub server: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    /// The server's base URL, or `in-process`.
    pub server: String,
    pub batch: Vec<usize>,
    pub concurrency: Vec<usize>,
    pub devices: Vec<String>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// How many distinct inputs the clients cycle through.
    pub inputs: usize,
}

/// One point of the grid.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub device: String,
    pub batch: usize,
    pub concurrency: usize,
    /// Requests completed inside the measured window.
    pub requests: u64,
    /// Requests the server refused or failed inside the window (not in `throughput`).
    pub errors: u64,
    /// Inputs completed per second inside the measured window (requests × batch).
    pub throughput: f64,
    pub latency_ms: Latency,
    /// The server's own view over the window: time queued per request, and time computing per
    /// execution (a batch, when the server batches).
    pub server: ServerTimes,
    /// The whole machine's busy share (all cores, 0–100) over the window, where `weir bench`
    /// runs: the server's only when it is in process or on the same machine.
    pub cpu_percent: Option<f64>,
    /// The GPU's utilisation and memory on a CUDA point of a server in this process; `null`
    /// otherwise.
    pub gpu: Option<GpuUse>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Default)]
pub struct ServerTimes {
    pub queue_ms: Option<f64>,
    pub compute_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct GpuUse {
    pub utilization_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// The table a person reads, one row per point.
pub fn markdown(r: &Results) -> String {
    let mut s = format!(
        "# weir bench: {} `{}`\n\n{} · {} CPUs · {} · weir {} · server {}\n\n\
         Window {:.1} s after a {:.1} s warm-up; {} distinct input(s).\n\n",
        r.target.kind,
        r.target.name,
        r.machine.hostname,
        r.machine.cpus,
        if r.machine.gpus.is_empty() {
            format!("no GPU ({})", r.machine.driver)
        } else {
            r.machine.gpus.join(", ")
        },
        r.versions.weir,
        r.versions.server,
        r.config.duration_s,
        r.config.warmup_s,
        r.config.inputs,
    );
    s.push_str(
        "| device | batch | concurrency | inputs/s | p50 ms | p95 ms | p99 ms | server queue ms \
         | server compute ms per batch | CPU % | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &r.records {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
            p.device,
            p.batch,
            p.concurrency,
            p.throughput,
            p.latency_ms.p50,
            p.latency_ms.p95,
            p.latency_ms.p99,
            opt_ms(p.server.queue_ms),
            opt_ms(p.server.compute_ms),
            p.cpu_percent.map_or("–".into(), |c| format!("{c:.0}")),
            p.errors
        );
    }
    s
}

/// Why two result files cannot be put side by side.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CompareError {
    #[error("{0} is not a weir bench result ({1})")]
    NotResults(String, String),
    #[error("the targets differ: {0} against {1}")]
    Targets(String, String),
    #[error("the grids differ: {0}")]
    Grids(String),
}

/// A point's place in the grid; without its device when two one-device runs are compared
/// across devices (the CPU against a GPU).
fn point(r: &Record, across: bool) -> (String, usize, usize) {
    let device = if across {
        String::new()
    } else {
        r.device.clone()
    };
    (device, r.batch, r.concurrency)
}

/// B beside A, point by point, with B's throughput and p50 latency as ratios to A's. Two runs of
/// one device each may be of different devices (that is how a GPU is set beside the CPU).
/// Refused when the two measured different targets or different grids: a ratio between unlike
/// points would mislead.
pub fn compare(a: &Results, b: &Results) -> Result<String, CompareError> {
    for (which, r) in [("A", a), ("B", b)] {
        if r.schema != SCHEMA {
            return Err(CompareError::NotResults(
                which.into(),
                format!("schema {:?}, expected {SCHEMA:?}", r.schema),
            ));
        }
    }
    let name = |r: &Results| format!("{} {:?}", r.target.kind, r.target.name);
    if a.target != b.target {
        return Err(CompareError::Targets(name(a), name(b)));
    }
    let (da, db) = (&a.config.devices, &b.config.devices);
    let across = da.len() == 1 && db.len() == 1 && da != db;
    let mut pa: Vec<_> = a.records.iter().map(|r| point(r, across)).collect();
    let mut pb: Vec<_> = b.records.iter().map(|r| point(r, across)).collect();
    pa.sort();
    pb.sort();
    if pa != pb {
        let only = |x: &[(String, usize, usize)], y: &[(String, usize, usize)]| {
            x.iter()
                .filter(|p| !y.contains(p))
                .map(|(d, b, c)| {
                    let d = if d.is_empty() {
                        String::new()
                    } else {
                        format!("{d}/")
                    };
                    format!("{d}batch {b}/concurrency {c}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(CompareError::Grids(format!(
            "only in A: [{}]; only in B: [{}]",
            only(&pa, &pb),
            only(&pb, &pa)
        )));
    }
    let mut s = format!(
        "# weir bench compare: {}\n\n| device | batch | concurrency | A inputs/s | B inputs/s \
         | B/A throughput | A p50 ms | B p50 ms | B/A p50 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        name(a)
    );
    for ra in &a.records {
        let rb = b
            .records
            .iter()
            .find(|r| point(r, across) == point(ra, across))
            .expect("same grid");
        let device = if across {
            format!("{} → {}", ra.device, rb.device)
        } else {
            ra.device.clone()
        };
        let ratio = |x: f64, y: f64| {
            if x > 0.0 {
                format!("{:.2}×", y / x)
            } else {
                "–".into()
            }
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {} |",
            device,
            ra.batch,
            ra.concurrency,
            ra.throughput,
            rb.throughput,
            ratio(ra.throughput, rb.throughput),
            ra.latency_ms.p50,
            rb.latency_ms.p50,
            ratio(ra.latency_ms.p50, rb.latency_ms.p50),
        );
    }
    Ok(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn results(name: &str, points: &[(usize, usize, f64)]) -> Results {
        Results {
            schema: SCHEMA.into(),
            target: Target {
                kind: "model".into(),
                name: name.into(),
            },
            machine: Machine {
                hostname: "h".into(),
                os: "linux".into(),
                cpus: 2,
                memory_bytes: 1,
                gpus: vec![],
                driver: "none".into(),
            },
            versions: Versions {
                weir: "0".into(),
                server: "weir 0".into(),
            },
            config: RunConfig {
                server: "in-process".into(),
                batch: vec![1],
                concurrency: vec![1],
                devices: vec!["cpu".into()],
                warmup_s: 1.0,
                duration_s: 1.0,
                inputs: 1,
            },
            records: points
                .iter()
                .map(|&(batch, concurrency, throughput)| Record {
                    device: "cpu".into(),
                    batch,
                    concurrency,
                    requests: 10,
                    errors: 0,
                    throughput,
                    latency_ms: Latency {
                        p50: 2.0,
                        p95: 3.0,
                        p99: 4.0,
                        mean: 2.0,
                    },
                    server: ServerTimes::default(),
                    cpu_percent: Some(50.0),
                    gpu: None,
                })
                .collect(),
        }
    }

    #[test]
    fn compare_gives_ratios_point_by_point() {
        let a = results("m", &[(1, 1, 100.0), (8, 1, 400.0)]);
        let b = results("m", &[(8, 1, 600.0), (1, 1, 50.0)]);
        let table = compare(&a, &b).unwrap();
        assert!(
            table.contains("| cpu | 1 | 1 | 100.0 | 50.0 | 0.50× |"),
            "{table}"
        );
        assert!(
            table.contains("| cpu | 8 | 1 | 400.0 | 600.0 | 1.50× |"),
            "{table}"
        );
    }

    #[test]
    fn one_device_runs_compare_across_devices() {
        let cpu = results("m", &[(1, 1, 10.0), (1, 4, 20.0)]);
        let mut gpu = results("m", &[(1, 1, 60.0), (1, 4, 200.0)]);
        gpu.config.devices = vec!["cuda:0".into()];
        for r in &mut gpu.records {
            r.device = "cuda:0".into();
        }
        let table = compare(&cpu, &gpu).unwrap();
        assert!(
            table.contains("| cpu → cuda:0 | 1 | 4 | 20.0 | 200.0 | 10.00× |"),
            "{table}"
        );
    }

    #[test]
    fn compare_refuses_other_targets_grids_and_files() {
        let a = results("m", &[(1, 1, 100.0)]);
        let other = results("n", &[(1, 1, 100.0)]);
        assert!(matches!(
            compare(&a, &other),
            Err(CompareError::Targets(..))
        ));
        let wider = results("m", &[(1, 1, 100.0), (1, 8, 10.0)]);
        let e = compare(&a, &wider).unwrap_err().to_string();
        assert!(
            e.contains("only in A: []; only in B: [cpu/batch 1/concurrency 8]"),
            "{e}"
        );
        let mut alien = a.clone();
        alien.schema = "perf_analyzer".into();
        assert!(matches!(
            compare(&alien, &a),
            Err(CompareError::NotResults(..))
        ));
    }

    #[test]
    fn the_table_has_a_row_per_point() {
        let md = markdown(&results("m", &[(1, 1, 100.0), (8, 4, 400.0)]));
        assert_eq!(md.matches("\n| cpu |").count(), 2, "{md}");
        assert!(md.contains("| cpu | 8 | 4 | 400.0 | 2.00 | 3.00 | 4.00 | – | – | 50 | 0 |"));
    }
}
