//! The `infer` function: an Open Inference Protocol request (JSON) in, the response JSON out, on
//! a model of the repository. The same request shape as `POST /v2/models/{m}/infer`, so an
//! object holding a request can be run by an upload, and a client can call either.

use std::sync::Arc;

use serde::Deserialize;
use weir_models::oip::{encode_response, parse_request};
use weir_models::{ModelError, RepoError, Repository};

use crate::{Artifact, ErrorKind, ExecCtx, FnError, Function, Input, Limits, Output};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InferParams {
    pub model: String,
    #[serde(default)]
    pub version: Option<String>,
}

pub struct Infer {
    repo: Arc<Repository>,
    params: InferParams,
}

impl Infer {
    pub fn new(repo: Arc<Repository>, params: InferParams) -> Result<Self, (&'static str, String)> {
        if !repo.index().iter().any(|e| e.name == params.model) {
            return Err((
                "model",
                format!(
                    "no model '{}' in the repository {}",
                    params.model,
                    repo.root().display()
                ),
            ));
        }
        Ok(Infer { repo, params })
    }

    fn one(&self, input: &Input) -> Result<Output, FnError> {
        let req = parse_request(&input.bytes, None).map_err(FnError::bad_input)?;
        let model = self
            .repo
            .get(&self.params.model, self.params.version.as_deref())
            .map_err(repo_error)?;
        let id = req.id.clone();
        // JSON in, JSON out: binary flags have no meaning in a stored object.
        let outputs: Vec<_> = weir_models::infer::infer(&model, req)
            .map_err(model_error)?
            .into_iter()
            .map(|(t, _)| (t, false))
            .collect();
        let (bytes, _) = encode_response(&model.name, model.version, id.as_deref(), &outputs)
            .map_err(FnError::bad_input)?;
        let summary = serde_json::from_slice(&bytes).unwrap_or_default();
        Ok(Output {
            artifacts: vec![Artifact {
                name: "response.json".into(),
                content_type: "application/json".into(),
                bytes,
                vars: Default::default(),
                placement: Default::default(),
            }],
            summary,
        })
    }
}

/// A model that is missing or not ready cannot be scheduled: 503, retried later.
pub fn repo_error(e: RepoError) -> FnError {
    match e {
        RepoError::NotFound(_) | RepoError::NotReady { .. } | RepoError::NoVersion { .. } => {
            FnError::new(ErrorKind::Unavailable, e.to_string())
        }
        other => FnError::transient(other.to_string()),
    }
}

pub fn model_error(e: ModelError) -> FnError {
    match e {
        ModelError::BadInput(m) => FnError::bad_input(m),
        ModelError::Overloaded(m) => FnError::new(ErrorKind::Overloaded, m),
        other => FnError::transient(other.to_string()),
    }
}

impl Function for Infer {
    fn kind(&self) -> &'static str {
        "infer"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: 64,
            gpu_capable: false,
            streams_input: false,
            max_decode_bytes: 0,
        }
    }

    fn call(&self, batch: &[Input], ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        batch
            .iter()
            .enumerate()
            .map(|(i, input)| ctx.check(i).and_then(|_| self.one(input)))
            .collect()
    }
}
