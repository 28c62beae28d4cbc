//! The `infer` function: an Open Inference Protocol request (JSON) in, the response JSON out, on
//! a model of the repository. The same request shape as `POST /v2/models/{m}/infer`, so an
//! object holding a request can be run by an upload, and a client can call either.

use std::sync::Arc;

use serde::Deserialize;
use weir_models::oip::{encode_response, parse_request};
use weir_models::{FailureKind, ModelError, RepoError, Repository};

use crate::model_ref::{Hold, ModelRef};
use crate::{ErrorKind, ExecCtx, FnError, Function, Input, Limits, Output};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InferParams {
    pub model: String,
    #[serde(default)]
    pub version: Option<String>,
}

pub struct Infer {
    model: ModelRef,
}

impl Infer {
    pub fn new(
        repo: Arc<Repository>,
        params: InferParams,
        hold: Hold<'_>,
    ) -> Result<Self, (&'static str, String)> {
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
        let model = hold.model_ref(repo, &params.model, params.version.as_deref());
        Ok(Infer { model })
    }

    fn one(&self, input: &Input) -> Result<Output, FnError> {
        let req = parse_request(&input.bytes, None).map_err(FnError::bad_input)?;
        let model = self.model.get()?;
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
        Ok(Output::json_document("response.json", bytes, summary))
    }
}

/// A repository failure as a function failure: the kind decides, as it does on `/v2`.
pub fn repo_error(e: RepoError) -> FnError {
    FnError::new(failure(e.kind()), e.to_string())
}

/// A model failure as a function failure: the kind decides, as it does on `/v2`.
pub fn model_error(e: ModelError) -> FnError {
    let kind = failure(e.kind());
    match e {
        ModelError::BadInput(m) | ModelError::Overloaded(m) => FnError::new(kind, m),
        other => FnError::new(kind, other.to_string()),
    }
}

/// A missing model is permanent (a dead letter, 422); one that cannot serve now is retried.
fn failure(kind: FailureKind) -> ErrorKind {
    match kind {
        FailureKind::BadRequest | FailureKind::NotFound => ErrorKind::BadInput,
        FailureKind::Unavailable => ErrorKind::Unavailable,
        FailureKind::Overloaded => ErrorKind::Overloaded,
        FailureKind::Internal => ErrorKind::Transient,
    }
}

impl Function for Infer {
    fn kind(&self) -> &'static str {
        "infer"
    }

    fn instances(&self) -> Option<crate::Instances> {
        Some(self.model.instances())
    }

    fn idle(&self, after: std::time::Duration) -> bool {
        self.model.idle(after)
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

#[cfg(test)]
mod failure_tests {
    use super::*;

    /// The same failure is retried through a function exactly when `/v2` answers it with a
    /// status a client retries (5xx or 429), and refused for good when `/v2` says 4xx.
    #[test]
    fn functions_and_v2_agree_on_every_model_failure() {
        let name = || "m".to_string();
        let repo = [
            RepoError::NotFound(name()),
            RepoError::NoVersion {
                name: name(),
                version: "2".into(),
            },
            RepoError::NotReady {
                name: name(),
                reason: "loading".into(),
            },
            RepoError::Load {
                name: name(),
                reason: "bad file".into(),
            },
            RepoError::Root("unreadable".into()),
        ];
        let model = [
            ModelError::BadInput("shape".into()),
            ModelError::Overloaded("queue full".into()),
            ModelError::Load("bad".into()),
            ModelError::Run("engine".into()),
        ];
        let pairs = repo
            .into_iter()
            .map(|e| (e.kind().http_status(), repo_error(e)))
            .chain(
                model
                    .into_iter()
                    .map(|e| (e.kind().http_status(), model_error(e))),
            );
        for (status, fn_err) in pairs {
            let retried_by_clients = status >= 500 || status == 429;
            assert_eq!(
                fn_err.kind().retryable(),
                retried_by_clients,
                "{status} vs {fn_err:?}"
            );
            assert_eq!(status == 429, fn_err.kind() == ErrorKind::Overloaded);
        }
        let load = RepoError::Load {
            name: name(),
            reason: "bad file".into(),
        };
        assert_eq!(
            load.kind().http_status(),
            503,
            "a failed load cannot serve now"
        );
        assert_eq!(repo_error(load).kind(), ErrorKind::Unavailable);
    }
}
