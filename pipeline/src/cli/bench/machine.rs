//! The machine a run was measured on, and its CPU and GPU use over a window: read from `/proc`
//! and the CUDA driver, each reading absent rather than wrong where it cannot be taken.

use weir_gpu::{Device, GpuMemory, Inventory};

use super::report::{GpuUse, Machine};

pub fn describe(inv: &Inventory) -> Machine {
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string());
    Machine {
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        os: pretty.unwrap_or_else(|| std::env::consts::OS.to_string()),
        cpus: weir_gpu::cpu_threads(),
        memory_bytes: weir_gpu::host_memory().unwrap_or(0),
        gpus: inv.gpus.iter().map(|g| g.name.clone()).collect(),
        driver: match (inv.driver_version, &inv.no_gpu_reason) {
            (Some(v), _) => format!("CUDA driver {}.{}", v / 1000, (v % 1000) / 10),
            (None, Some(why)) => why.clone(),
            (None, None) => "unknown".into(),
        },
    }
}

/// The whole machine's busy and total jiffies from `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    pub fn now() -> Option<CpuTimes> {
        parse_stat(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The busy share (0–100) between `self` and `later`.
    pub fn percent_until(&self, later: &CpuTimes) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        (total > 0).then(|| busy as f64 * 100.0 / total as f64)
    }
}

fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// The GPU's memory in use at the window's close, for a CUDA point. Utilisation needs NVML,
/// which Weir does not load yet, so it stays absent.
pub fn gpu_use(device: Device) -> Option<GpuUse> {
    match device {
        Device::Cpu => None,
        Device::Cuda(i) => Some(GpuUse {
            utilization_percent: None,
            memory_bytes: GpuMemory::open(i).and_then(|g| g.used()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_share_comes_from_proc_stat() {
        let a = parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        let b = parse_stat("cpu  250 0 100 900 50 0 0 0 0 0\n").unwrap();
        let busy = a.percent_until(&b).unwrap();
        assert!((busy - 200.0 / 3.0).abs() < 1e-9, "{busy}");
        assert_eq!(b.percent_until(&a), None);
        assert!(parse_stat("intr 1 2").is_none());
    }
}
