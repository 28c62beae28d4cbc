//! Device memory in use on one GPU, read through the CUDA driver, so that what loading a model
//! took there can be counted. Like the probe, every failure is an absent reading, never a panic.

use std::ffi::c_int;

use cudarc::driver::{result, sys};

/// GPU `index`'s primary context, held while readings are taken. onnxruntime's CUDA provider
/// works in the same primary context, so holding it first keeps the context's own cost (hundreds
/// of MB) out of the first model's figure.
pub struct GpuMemory {
    dev: sys::CUdevice,
}

impl GpuMemory {
    /// `None` without a driver or without that GPU.
    pub fn open(index: u32) -> Option<GpuMemory> {
        // SAFETY: only tries to open the shared library.
        if !unsafe { sys::is_culib_present() } {
            return None;
        }
        std::panic::catch_unwind(|| {
            result::init().ok()?;
            let dev = result::device::get(index as c_int).ok()?;
            // SAFETY: `dev` is a valid device handle from the driver.
            let ctx = unsafe { result::primary_ctx::retain(dev) }.ok()?;
            // SAFETY: `ctx` was just retained; binding it to this thread is what the readings need.
            if unsafe { result::ctx::set_current(ctx) }.is_err() {
                // SAFETY: balances the retain above.
                let _ = unsafe { result::primary_ctx::release(dev) };
                return None;
            }
            Some(GpuMemory { dev })
        })
        .ok()
        .flatten()
    }

    /// Bytes in use on the device, by every process: total less free.
    pub fn used(&self) -> Option<u64> {
        let (free, total) = std::panic::catch_unwind(result::mem_get_info).ok()?.ok()?;
        Some(total.saturating_sub(free) as u64)
    }
}

impl Drop for GpuMemory {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `open`; the context lives on while others hold it.
        let _ = std::panic::catch_unwind(|| unsafe { result::primary_ctx::release(self.dev) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_gpu_there_is_no_reading_and_no_panic() {
        // SAFETY: only tries to open the shared library.
        if !unsafe { sys::is_culib_present() } {
            assert!(GpuMemory::open(0).is_none());
        }
        assert!(GpuMemory::open(4096).is_none(), "no machine has GPU 4096");
    }
}
