//! The model memory budget: when loading a model takes a device past its budget, the least
//! recently used idle models are unloaded (Triton keeps every model forever; serverless cannot).
//! A model in use by a request is never unloaded; one unloaded this way loads again when asked.
//! Each device has its own budget: a GPU's memory and the host's are different things.

use std::collections::BTreeMap;

use weir_gpu::Device;

/// Model memory allowed per device; a device without a limit keeps every model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Budget {
    every: Option<u64>,
    /// By `cpu`, `cuda` (every GPU) or `cuda:N`.
    devices: BTreeMap<String, u64>,
}

impl Budget {
    /// The same limit on every device.
    pub fn every(bytes: u64) -> Budget {
        Budget {
            every: Some(bytes),
            devices: BTreeMap::new(),
        }
    }

    /// Limits by device name: `cpu`, `cuda` (each GPU) or `cuda:N` (that one, before `cuda`).
    pub fn per_device(limits: BTreeMap<String, u64>) -> Result<Budget, String> {
        for name in limits.keys() {
            let ok = name == "cpu"
                || name == "cuda"
                || name
                    .strip_prefix("cuda:")
                    .is_some_and(|n| n.parse::<u32>().is_ok());
            if !ok {
                return Err(format!(
                    "unknown device {name:?}: use cpu, cuda (every GPU) or cuda:N"
                ));
            }
        }
        Ok(Budget {
            every: None,
            devices: limits,
        })
    }

    pub fn limit(&self, device: Device) -> Option<u64> {
        let named = self.devices.get(&device.to_string()).copied();
        let family = match device {
            Device::Cpu => None,
            Device::Cuda(_) => self.devices.get("cuda").copied(),
        };
        named.or(family).or(self.every)
    }
}

/// One loaded model version, as the budget sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resident {
    pub name: String,
    pub device: Device,
    pub bytes: u64,
    /// Milliseconds since the epoch of its last use (load counts as use).
    pub last_used: u64,
    /// Whether a request holds it right now.
    pub busy: bool,
}

/// Which models to unload, oldest use first, so that what stays on each device fits its budget.
/// `keep` (the model just loaded) stays. May leave a device over budget when every other model on
/// it is busy. A model on several devices goes from all of them (it unloads as a whole).
pub fn evictions(resident: &[Resident], budget: &Budget, keep: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut devices: Vec<Device> = resident.iter().map(|r| r.device).collect();
    devices.sort_by_key(|d| d.to_string());
    devices.dedup();
    for device in devices {
        let Some(limit) = budget.limit(device) else {
            continue;
        };
        let here = |r: &&Resident| r.device == device && !out.contains(&r.name);
        let mut total: u64 = resident.iter().filter(here).map(|r| r.bytes).sum();
        let mut idle: Vec<&Resident> = resident
            .iter()
            .filter(here)
            .filter(|r| !r.busy && r.name != keep)
            .collect();
        idle.sort_by_key(|r| r.last_used);
        for r in idle {
            if total <= limit {
                break;
            }
            total -= r.bytes;
            out.push(r.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, bytes: u64, last_used: u64, busy: bool) -> Resident {
        Resident {
            name: name.into(),
            device: Device::Cpu,
            bytes,
            last_used,
            busy,
        }
    }

    #[test]
    fn the_least_recently_used_idle_models_go_first() {
        let models = [
            r("a", 10, 1, false),
            r("b", 10, 2, false),
            r("c", 10, 3, false),
        ];
        let every = Budget::every;
        assert_eq!(evictions(&models, &every(30), "c"), Vec::<String>::new());
        assert_eq!(evictions(&models, &every(20), "c"), vec!["a"]);
        assert_eq!(evictions(&models, &every(10), "c"), vec!["a", "b"]);
        assert_eq!(
            evictions(&models, &Budget::default(), "c"),
            Vec::<String>::new()
        );
        // The model just loaded stays even when it is the oldest.
        assert_eq!(evictions(&models, &every(20), "a"), vec!["b"]);
        // Busy models stay; the budget may be exceeded rather than fail a request.
        let busy = [
            r("a", 10, 1, true),
            r("b", 10, 2, false),
            r("c", 10, 3, false),
        ];
        assert_eq!(evictions(&busy, &every(10), "c"), vec!["b"]);
    }

    #[test]
    fn each_device_keeps_to_its_own_budget() {
        let on = |name: &str, device, last_used| Resident {
            device,
            ..r(name, 10, last_used, false)
        };
        let models = [
            on("cpu-old", Device::Cpu, 1),
            on("gpu-old", Device::Cuda(0), 2),
            on("gpu-new", Device::Cuda(0), 3),
            on("other-gpu", Device::Cuda(1), 4),
        ];
        let limits = |pairs: &[(&str, u64)]| {
            Budget::per_device(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()).unwrap()
        };
        // GPU 0 holds 20 against 10: its oldest goes; the CPU's older model is not its concern.
        let b = limits(&[("cuda:0", 10)]);
        assert_eq!(evictions(&models, &b, "gpu-new"), vec!["gpu-old"]);
        // `cuda` covers every GPU; `cuda:N` comes first for its GPU; `cpu` only the host.
        let b = limits(&[("cuda", 10), ("cuda:0", 20), ("cpu", 5)]);
        assert_eq!(b.limit(Device::Cuda(0)), Some(20));
        assert_eq!(b.limit(Device::Cuda(7)), Some(10));
        assert_eq!(evictions(&models, &b, "gpu-new"), vec!["cpu-old"]);
        assert!(Budget::per_device([("tpu".to_string(), 1)].into()).is_err());
        assert!(Budget::per_device([("cuda:x".to_string(), 1)].into()).is_err());
    }
}
