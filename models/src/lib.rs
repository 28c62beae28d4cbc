//! The model repository, the `Backend` seam and the warm model cache.
//!
//! Empty until the inference issues: it exists now so the crate order
//! (`pipeline → workers → functions → models → gpu`) is fixed from the first commit.

pub use weir_gpu::Device;
