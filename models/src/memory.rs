//! What a loaded model takes on its device, measured while it loads rather than guessed from its
//! file: engines unfold constants, pack weights for their kernels and keep arenas for activations,
//! so a 200-byte file can hold 64 MiB. The device's memory in use (the process's resident memory
//! for the CPU, the driver's figure for a GPU) is read before and after the session is created and
//! warmed up; loads run one at a time so that one load's growth is not counted in another's.
//! Anything else the process does meanwhile blurs the figure, so it never counts for less than
//! the file.

use std::sync::Mutex;

use weir_gpu::Device;

use crate::backend::Backend;

/// One load at a time, process-wide (repositories included).
static LOADS: Mutex<()> = Mutex::new(());

/// An engine pays once per process and device for its own start (its code paged in, its
/// registries): about 30 MB for onnxruntime, which is no model's memory. Before the first
/// measured load, each engine loads and runs this 117-byte identity model unmeasured.
const PRIMER: &[u8] = include_bytes!("../../examples/models/identity_fp32/1/model.onnx");
static PRIMED: Mutex<Vec<(&'static str, Device)>> = Mutex::new(Vec::new());

/// Start `backend` on `device` outside any measurement, once per process.
pub(crate) fn prime(backend: &dyn Backend, device: Device) {
    let _alone = LOADS.lock().unwrap_or_else(|p| p.into_inner());
    let mut primed = PRIMED.lock().unwrap_or_else(|p| p.into_inner());
    if primed.contains(&(backend.name(), device)) {
        return;
    }
    primed.push((backend.name(), device));
    let config =
        crate::config::ModelConfig::parse("max_batch_size: 1\n", std::path::Path::new("(primer)"));
    if let Ok(config) = config
        && let Ok(session) = backend.load(PRIMER, &config, device)
    {
        let _ = crate::warmup::run(session.as_ref());
    }
}

/// What one model version is counted as taking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// The model file's size.
    pub file: u64,
    /// How much the device's memory in use grew while it loaded; `None` when it could not be read.
    pub measured: Option<u64>,
}

impl Footprint {
    /// What the budget counts: the growth, but never less than the file.
    pub fn bytes(&self) -> u64 {
        self.measured.unwrap_or(0).max(self.file)
    }

    /// A reload of the same file may land in memory the allocator kept from the last copy and
    /// seem to take nothing; the larger reading stands.
    pub fn or_larger(self, earlier: Option<Footprint>) -> Footprint {
        match earlier {
            Some(e) if e.file == self.file && e.measured > self.measured => Footprint {
                measured: e.measured,
                ..self
            },
            _ => self,
        }
    }
}

/// Run `load` alone and measure how much `device`'s memory in use grew meanwhile.
pub fn measure<T>(device: Device, load: impl FnOnce() -> T) -> (T, Option<u64>) {
    let _alone = LOADS.lock().unwrap_or_else(|p| p.into_inner());
    let gpu = match device {
        Device::Cpu => None,
        Device::Cuda(i) => weir_gpu::GpuMemory::open(i),
    };
    let used = || match (device, &gpu) {
        (Device::Cpu, _) => resident_bytes(),
        (Device::Cuda(_), Some(g)) => g.used(),
        (Device::Cuda(_), None) => None,
    };
    let before = used();
    let out = load();
    let after = used();
    (out, growth(before, after))
}

fn growth(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    Some(after?.saturating_sub(before?))
}

/// The process's resident memory (`VmRSS`), in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss(&status)
}

fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => Some(n * 1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc_status() {
        let status = "Name:\tweir\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(vm_rss(status), Some(12345 * 1024));
        assert_eq!(vm_rss("VmRSS:\t12 pages\n"), None);
        assert_eq!(vm_rss("Name:\tweir\n"), None);
        assert!(
            resident_bytes().is_some_and(|b| b > 0),
            "this process has a VmRSS"
        );
    }

    #[test]
    fn growth_needs_both_readings_and_is_never_negative() {
        assert_eq!(growth(Some(10), Some(25)), Some(15));
        assert_eq!(growth(Some(25), Some(10)), Some(0));
        assert_eq!(growth(None, Some(10)), None);
    }

    #[test]
    fn a_footprint_is_never_less_than_its_file_and_keeps_the_larger_reading() {
        let f = |file, measured| Footprint { file, measured };
        assert_eq!(f(100, Some(5000)).bytes(), 5000);
        assert_eq!(f(100, Some(7)).bytes(), 100);
        assert_eq!(f(100, None).bytes(), 100);
        // A reload that seemed to take nothing keeps the earlier reading of the same file...
        assert_eq!(
            f(100, Some(0)).or_larger(Some(f(100, Some(5000)))).bytes(),
            5000
        );
        // ...but a new file is measured afresh.
        assert_eq!(
            f(200, Some(0)).or_larger(Some(f(100, Some(5000)))).bytes(),
            200
        );
        assert_eq!(
            f(100, Some(9000))
                .or_larger(Some(f(100, Some(5000))))
                .bytes(),
            9000
        );
    }

    #[test]
    fn a_load_that_allocates_is_measured() {
        let (kept, grew) = measure(Device::Cpu, || {
            let v = vec![1u8; 64 << 20];
            std::hint::black_box(v)
        });
        assert_eq!(kept.len(), 64 << 20);
        // Other tests run beside this one; the 64 MiB touched here should still show.
        assert!(grew.is_some_and(|g| g >= 32 << 20), "{grew:?}");
    }
}
