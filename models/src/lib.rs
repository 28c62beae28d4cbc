//! The model repository, the `Backend` seam and its tract engine, tensors, and image
//! preprocessing for classifiers. Models are loaded once per version and kept warm.

pub mod backend;
pub mod budget;
pub mod config;
pub mod cores;
mod facts;
pub mod failure;
pub mod infer;
mod labels;
mod loaded;
pub mod memory;
pub mod metric_names;
pub mod oip;
#[cfg(feature = "ort")]
mod onnxruntime;
pub mod preprocess;
pub mod queue;
pub mod repository;
pub mod spread;
pub mod stats;
pub mod tensor;
mod tract;
mod warmup;

pub use backend::{Backend, Backends, ModelError, Session, Signature};
pub use config::ModelConfig;
pub use failure::FailureKind;
pub use repository::{IndexEntry, LoadedModel, RepoError, Repository};
pub use tensor::{DataType, Tensor};
pub use weir_gpu::{Device, Inventory};
