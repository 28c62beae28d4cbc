//! The CUDA probe: is there a driver, how many GPUs, what are they. Every failure becomes a reason
//! string; nothing here may panic the process (cudarc panics if a symbol it needs is missing, so the
//! calls run under `catch_unwind`).

use std::ffi::c_int;

use cudarc::driver::{result, sys};

use crate::{GpuInfo, Inventory};

/// Set to skip the probe and run on the CPU whatever the machine has.
pub const DISABLE_ENV: &str = "WEIR_DISABLE_CUDA";

pub fn cuda() -> Inventory {
    if std::env::var_os(DISABLE_ENV).is_some_and(|v| !v.is_empty() && v != "0") {
        return Inventory::cpu_only(&format!("{DISABLE_ENV} is set"));
    }
    // SAFETY: only tries to open the shared library; calls nothing in it.
    if !unsafe { sys::is_culib_present() } {
        return Inventory::cpu_only("no CUDA driver library (libcuda.so) was found");
    }
    match std::panic::catch_unwind(query) {
        Ok(Ok(inv)) => inv,
        Ok(Err(reason)) => Inventory::cpu_only(&reason),
        Err(_) => Inventory::cpu_only(
            "the CUDA driver library lacks a function Weir needs (driver too old?)",
        ),
    }
}

fn query() -> Result<Inventory, String> {
    result::init().map_err(|e| format!("the CUDA driver would not start: {e:?}"))?;
    let mut version: c_int = 0;
    // SAFETY: the driver is initialised; the pointer is valid for one c_int.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(|e| format!("cannot read the CUDA driver version: {e:?}"))?;
    let count = result::device::get_count().map_err(|e| format!("cannot count GPUs: {e:?}"))?;
    let gpus = (0..count).map(describe).collect::<Result<Vec<_>, _>>()?;
    let no_gpu_reason = gpus
        .is_empty()
        .then(|| "the CUDA driver reports no GPU".to_string());
    Ok(Inventory {
        gpus,
        driver_version: Some(version),
        no_gpu_reason,
    })
}

fn describe(ordinal: c_int) -> Result<GpuInfo, String> {
    let failed = |what: &str, e: result::DriverError| {
        format!("GPU {ordinal}: cannot read its {what}: {e:?}")
    };
    let dev = result::device::get(ordinal).map_err(|e| failed("handle", e))?;
    let name = result::device::get_name(dev).map_err(|e| failed("name", e))?;
    // SAFETY: `dev` came from `device::get` above.
    let memory = unsafe { result::device::total_mem(dev) }.map_err(|e| failed("memory size", e))?;
    let attr = |a| unsafe { result::device::get_attribute(dev, a) };
    let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
        .map_err(|e| failed("compute capability", e))?;
    let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        .map_err(|e| failed("compute capability", e))?;
    Ok(GpuInfo {
        index: ordinal as u32,
        name,
        memory_bytes: memory as u64,
        compute_capability: (major, minor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_never_panics_and_always_explains_an_empty_answer() {
        let inv = cuda();
        if inv.gpus.is_empty() {
            assert!(inv.no_gpu_reason.is_some(), "{inv:?}");
        }
    }

    #[test]
    fn it_can_be_switched_off() {
        // SAFETY: tests in this crate do not read this variable concurrently elsewhere.
        unsafe { std::env::set_var(DISABLE_ENV, "1") };
        let inv = cuda();
        unsafe { std::env::remove_var(DISABLE_ENV) };
        assert!(inv.gpus.is_empty());
        assert_eq!(
            inv.no_gpu_reason.as_deref(),
            Some("WEIR_DISABLE_CUDA is set")
        );
    }
}
