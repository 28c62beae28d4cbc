//! Per-function worker pools: admission before the body is read, a dynamic batcher, CPU work on a
//! rayon pool (never on the async runtime's threads), and per-invocation deadlines.

mod batch;
mod batcher;
mod config;
pub mod metric_names;
mod pool;

pub use batch::Accumulator;
pub use config::PoolConfig;
pub use pool::{Admission, Pool, PoolStats, cpu_pool};
pub use weir_functions::{ErrorKind, FnError};
