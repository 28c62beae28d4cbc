//! The `Function` seam and Weir's built-in function kinds.
//!
//! A function is pure compute over a batch: bytes in, artifacts and JSON out, no network I/O.
//! One result per input, in order, so one bad image never fails its neighbours.

pub mod classify;
mod error;
mod function;
pub mod infer;
pub mod keyframes;
pub mod kinds;
pub mod memory;
pub mod noop;
mod source;
pub use weir_models::spread;
pub mod thumbnail;

pub use error::{ErrorKind, FnError};
pub use function::{Artifact, ExecCtx, Function, Input, Limits, Output, Placement, before};
pub use source::{FileSource, Source, SourceReader};
