//! What a model or repository failure means to a caller, decided once: the Open Inference
//! routes turn it into a status, the `infer` and `classify` functions into an `ErrorKind` (and so
//! a status on `/v1` and a retry decision on the bus), from the same `kind()`.

use crate::{ModelError, RepoError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The request does not fit the model (shape, datatype, unknown tensor). Never retried.
    BadRequest,
    /// No such model or version. Never retried: the name is wrong until the config changes.
    NotFound,
    /// The model exists but cannot serve now: not loaded yet, or its load failed. Retried.
    Unavailable,
    /// Its queue is full: nothing ran. Retried after a pause, spending no attempt.
    Overloaded,
    /// The engine or the repository failed on a well-formed request. Retried.
    Internal,
}

impl FailureKind {
    /// The Open Inference Protocol's status (Triton's choices).
    pub fn http_status(self) -> u16 {
        match self {
            FailureKind::BadRequest => 400,
            FailureKind::NotFound => 404,
            FailureKind::Unavailable => 503,
            FailureKind::Overloaded => 429,
            FailureKind::Internal => 500,
        }
    }
}

impl ModelError {
    pub fn kind(&self) -> FailureKind {
        match self {
            ModelError::BadInput(_) => FailureKind::BadRequest,
            ModelError::Overloaded(_) => FailureKind::Overloaded,
            ModelError::Load(_) => FailureKind::Unavailable,
            ModelError::Run(_) => FailureKind::Internal,
        }
    }
}

impl RepoError {
    pub fn kind(&self) -> FailureKind {
        match self {
            RepoError::NotFound(_) | RepoError::NoVersion { .. } => FailureKind::NotFound,
            RepoError::NotReady { .. } | RepoError::Load { .. } => FailureKind::Unavailable,
            RepoError::Root(_) => FailureKind::Internal,
        }
    }
}
