//! The `Function` seam and Weir's built-in function kinds.
//!
//! A built-in function is pure compute over a batch: bytes in, artifacts and JSON out, no network
//! I/O. The `process` kind runs users' own code in worker processes instead.
//! One result per input, in order, so one bad image never fails its neighbours.

pub mod classify;
mod error;
mod function;
pub mod infer;
pub mod keyframes;
pub mod kinds;
pub mod memory;
pub mod metric_names;
pub mod model_ref;
pub mod noop;
mod origin;
pub mod process;
mod source;
pub use weir_models::spread;
pub mod thumbnail;

pub use error::{ErrorKind, FnError};
pub use function::{
    Artifact, Early, ExecCtx, Function, Input, Instances, Limits, Output, Placement, Started,
    before,
};
pub use origin::{HttpRequest, ObjectEvent, Origin, Reply, ScheduledEvent};
pub use source::{FileSource, Source, SourceReader};
