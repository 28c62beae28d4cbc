//! Devices Weir can place work on.
//!
//! The placement decision is pure (`DeviceRequest::resolve`) so it is unit-tested apart from the
//! hardware probe (`probe.rs`), which asks the CUDA driver through cudarc's dynamic loading: the
//! binary builds with no CUDA toolkit and runs on machines with no GPU, reporting why.

use std::fmt;
use std::str::FromStr;

mod meter;
mod probe;

pub use meter::GpuMemory;

/// A concrete place to run work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(u32),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// What a function spec asks for (`resources.device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceRequest {
    /// The best device the function can use that is present: a GPU if any, else the CPU.
    #[default]
    Auto,
    Cpu,
    /// `cuda` (any GPU, `None`) or `cuda:N`.
    Cuda(Option<u32>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device {0:?}: expected cpu, cuda, cuda:N or auto")]
    Unknown(String),
    #[error("device {requested} asked for, but {reason}")]
    Unavailable { requested: String, reason: String },
    #[error("this function runs on the CPU only; device {0} cannot be used")]
    NotSupported(String),
}

impl FromStr for DeviceRequest {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "cuda" | "gpu" => Ok(DeviceRequest::Cuda(None)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<u32>().ok())
                .map(|n| DeviceRequest::Cuda(Some(n)))
                .ok_or_else(|| DeviceError::Unknown(other.to_string())),
        }
    }
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceRequest::Auto => f.write_str("auto"),
            DeviceRequest::Cpu => f.write_str("cpu"),
            DeviceRequest::Cuda(None) => f.write_str("cuda"),
            DeviceRequest::Cuda(Some(n)) => write!(f, "cuda:{n}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for DeviceRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One GPU, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInfo {
    pub index: u32,
    pub name: String,
    pub memory_bytes: u64,
    /// Compute capability (major, minor), e.g. (9, 0) for an H100.
    pub compute_capability: (i32, i32),
}

/// What the machine has, as found by a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub gpus: Vec<GpuInfo>,
    /// The CUDA driver's version (e.g. 12080), when a driver was found.
    pub driver_version: Option<i32>,
    /// Why there are no GPUs, for logs and `weir devices`.
    pub no_gpu_reason: Option<String>,
}

impl Inventory {
    /// Ask the CUDA driver, if there is one. Never panics: no driver means CPU only, with the reason.
    pub fn probe() -> Self {
        probe::cuda()
    }

    pub fn cpu_only(reason: &str) -> Self {
        Inventory {
            gpus: vec![],
            driver_version: None,
            no_gpu_reason: Some(reason.to_string()),
        }
    }

    pub fn gpu_count(&self) -> u32 {
        self.gpus.len() as u32
    }
}

impl DeviceRequest {
    /// Decide where a function runs. `gpu_capable` says whether the function has a GPU path.
    /// `auto` never fails: it falls back to the CPU. An explicit `cuda` request that cannot be
    /// met is refused so the operator hears about it at start rather than getting a slow CPU run.
    pub fn resolve(self, inv: &Inventory, gpu_capable: bool) -> Result<Device, DeviceError> {
        match self {
            DeviceRequest::Cpu => Ok(Device::Cpu),
            DeviceRequest::Auto if gpu_capable && inv.gpu_count() > 0 => Ok(Device::Cuda(0)),
            DeviceRequest::Auto => Ok(Device::Cpu),
            DeviceRequest::Cuda(_) if !gpu_capable => {
                Err(DeviceError::NotSupported(self.to_string()))
            }
            DeviceRequest::Cuda(n) => {
                let n = n.unwrap_or(0);
                if n < inv.gpu_count() {
                    Ok(Device::Cuda(n))
                } else {
                    let reason = match &inv.no_gpu_reason {
                        Some(r) if inv.gpus.is_empty() => r.clone(),
                        _ => format!("only {} GPU(s) found", inv.gpu_count()),
                    };
                    Err(DeviceError::Unavailable {
                        requested: self.to_string(),
                        reason,
                    })
                }
            }
        }
    }
}

/// Threads for CPU work: every core the process may use.
pub fn cpu_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Memory the process may use: the machine's (`MemTotal`), or its cgroup's limit when lower
/// (a container). `None` where neither can be read.
pub fn host_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok();
    memory_limit(meminfo.as_deref(), cgroup.as_deref())
}

/// The lower of `MemTotal` in a `/proc/meminfo` text and a cgroup v2 `memory.max`.
fn memory_limit(meminfo: Option<&str>, cgroup_max: Option<&str>) -> Option<u64> {
    let total = meminfo.and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = cgroup_max.and_then(|c| c.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_the_machine_or_the_cgroup_whichever_is_lower() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:  100 kB\n";
        assert_eq!(memory_limit(Some(meminfo), None), Some(24_576_000 * 1024));
        assert_eq!(
            memory_limit(Some(meminfo), Some("max\n")),
            Some(24_576_000 * 1024)
        );
        assert_eq!(
            memory_limit(Some(meminfo), Some("4294967296\n")),
            Some(4 << 30)
        );
        assert_eq!(memory_limit(None, Some("1073741824")), Some(1 << 30));
        assert_eq!(memory_limit(Some("garbage"), None), None);
    }

    fn gpus(n: u32) -> Inventory {
        if n == 0 {
            return Inventory::cpu_only("no driver");
        }
        let gpu = |index| GpuInfo {
            index,
            name: "test".into(),
            memory_bytes: 1 << 30,
            compute_capability: (9, 0),
        };
        Inventory {
            gpus: (0..n).map(gpu).collect(),
            driver_version: Some(12080),
            no_gpu_reason: None,
        }
    }

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(None)));
        assert_eq!("cuda:1".parse(), Ok(DeviceRequest::Cuda(Some(1))));
        assert!(matches!(
            "cuda:x".parse::<DeviceRequest>(),
            Err(DeviceError::Unknown(_))
        ));
        assert!(matches!(
            "tpu".parse::<DeviceRequest>(),
            Err(DeviceError::Unknown(_))
        ));
    }

    #[test]
    fn auto_prefers_a_gpu_only_for_gpu_capable_functions() {
        assert_eq!(
            DeviceRequest::Auto.resolve(&gpus(2), true),
            Ok(Device::Cuda(0))
        );
        assert_eq!(
            DeviceRequest::Auto.resolve(&gpus(2), false),
            Ok(Device::Cpu)
        );
        assert_eq!(DeviceRequest::Auto.resolve(&gpus(0), true), Ok(Device::Cpu));
    }

    #[test]
    fn explicit_cuda_is_refused_with_the_reason() {
        let err = DeviceRequest::Cuda(None)
            .resolve(&gpus(0), true)
            .unwrap_err();
        assert_eq!(err.to_string(), "device cuda asked for, but no driver");
        let err = DeviceRequest::Cuda(Some(3))
            .resolve(&gpus(2), true)
            .unwrap_err();
        assert!(err.to_string().contains("only 2 GPU(s)"), "{err}");
        assert_eq!(
            DeviceRequest::Cuda(Some(1)).resolve(&gpus(2), true),
            Ok(Device::Cuda(1))
        );
        assert!(matches!(
            DeviceRequest::Cuda(None).resolve(&gpus(1), false),
            Err(DeviceError::NotSupported(_))
        ));
    }
}
