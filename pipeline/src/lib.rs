//! Weir's pipeline crate: configuration, the HTTP API, metrics and the command line.

pub mod bus;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod events;
mod group_commit;
pub mod http;
pub mod invocations;
pub mod jobs;
pub mod metric_names;
pub mod router;
pub mod s3_endpoint;
pub mod server;
mod sinks;
pub mod spool;
pub mod store;
pub mod telemetry;
pub mod triggers;
