//! The function-kind registry: every built-in kind, how it is built from its spec's `params`,
//! and what its outputs' key templates may use. The pipeline knows no kind by name; adding a
//! kind touches this crate only.

use std::sync::Arc;

use weir_models::Repository;

use crate::Function;
use crate::classify::{Classify, ClassifyParams};
use crate::infer::{Infer, InferParams};
use crate::keyframes::Keyframes;
use crate::noop::{Noop, NoopParams};
use crate::process::{Process, ProcessParams, Sizes};
use crate::thumbnail::Thumbnail;

/// What building a kind may need besides its params.
#[derive(Default, Clone, Copy)]
pub struct BuildCtx<'a> {
    pub models: Option<&'a Arc<Repository>>,
    /// The function's name.
    pub name: &'a str,
    /// The folder of the file the spec came from, for relative paths in params.
    pub base: Option<&'a std::path::Path>,
    /// `resources.workers`, for kinds that keep processes or models of their own.
    pub workers: Sizes,
}

/// Why a kind could not be built: the field under the function's spec (`params.sizes[0]`,
/// `kind`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct KindError {
    pub field: String,
    pub message: String,
}

/// How a kind is made from its params.
type Build = fn(&serde_yaml::Value, BuildCtx) -> Result<Arc<dyn Function>, KindError>;

/// One kind of function.
pub struct Kind {
    pub name: &'static str,
    /// Variables its artifacts give output key templates, beside the built-in ones.
    pub template_vars: &'static [&'static str],
    /// Variables that tell one input's artifacts apart when it makes many (a video's frames):
    /// the key's last segment needs one of them, and its folder a `{key}` or `{stem}`, since a
    /// manifest is written beside them. Empty when an input makes a fixed set.
    pub per_item_vars: &'static [&'static str],
    /// Whether a function of this kind may go without an `output` although storage events
    /// trigger it (users' code that writes its own objects).
    pub output_optional: bool,
    build: Build,
}

impl Kind {
    /// The function from its spec's `params`.
    pub fn build(
        &self,
        params: &serde_yaml::Value,
        ctx: BuildCtx,
    ) -> Result<Arc<dyn Function>, KindError> {
        if params.is_null() {
            return Err(KindError {
                field: "params".into(),
                message: format!("expected the {} kind's params (a mapping)", self.name),
            });
        }
        (self.build)(params, ctx)
    }
}

/// Every kind this build knows.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "thumbnail",
        template_vars: &["size"],
        per_item_vars: &[],
        output_optional: false,
        build: |p, _| Ok(Arc::new(Thumbnail::new(params(p)?).map_err(field)?)),
    },
    Kind {
        name: "keyframes",
        template_vars: &["index", "pts_ms"],
        per_item_vars: &["index", "pts_ms"],
        output_optional: false,
        build: |p, _| Ok(Arc::new(Keyframes::new(params(p)?).map_err(field)?)),
    },
    Kind {
        name: "classify",
        template_vars: &[],
        per_item_vars: &[],
        output_optional: false,
        build: |p, ctx| {
            let params: ClassifyParams = params(p)?;
            Ok(Arc::new(
                Classify::new(repository(ctx, "classify")?, params, hold(ctx)).map_err(field)?,
            ))
        },
    },
    Kind {
        name: "infer",
        template_vars: &[],
        per_item_vars: &[],
        output_optional: false,
        build: |p, ctx| {
            let params: InferParams = params(p)?;
            Ok(Arc::new(
                Infer::new(repository(ctx, "infer")?, params, hold(ctx)).map_err(field)?,
            ))
        },
    },
    Kind {
        name: "noop",
        template_vars: &[],
        per_item_vars: &[],
        output_optional: false,
        build: |p, _| {
            let _: NoopParams = params(p)?;
            Ok(Arc::new(Noop))
        },
    },
    Kind {
        name: "process",
        template_vars: &[],
        per_item_vars: &[],
        output_optional: true,
        build: |p, ctx| {
            let params: ProcessParams = params(p)?;
            let f = Process::new(ctx.name, params, ctx.base, ctx.workers).map_err(field)?;
            Ok(Arc::new(f))
        },
    },
];

/// The kind called `name`, or an error listing the kinds there are.
pub fn find(name: &str) -> Result<&'static Kind, KindError> {
    KINDS.iter().find(|k| k.name == name).ok_or_else(|| {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        KindError {
            field: "kind".into(),
            message: format!(
                "unknown kind {name:?}; expected one of {}",
                names.join(", ")
            ),
        }
    })
}

fn params<T: serde::de::DeserializeOwned>(value: &serde_yaml::Value) -> Result<T, KindError> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let message = e.into_inner().to_string();
        let message = message
            .strip_prefix(&format!("{inner}: "))
            .map(str::to_string)
            .unwrap_or(message);
        let field = if inner == "." {
            "params".to_string()
        } else {
            format!("params.{inner}")
        };
        KindError { field, message }
    })
}

/// A constructor's refusal of one param.
fn field((name, message): (&str, String)) -> KindError {
    KindError {
        field: format!("params.{name}"),
        message,
    }
}

/// A model-holding kind's function name, and whether `workers.min` keeps its model warm.
fn hold(ctx: BuildCtx<'_>) -> crate::model_ref::Hold<'_> {
    crate::model_ref::Hold {
        function: ctx.name,
        keep_warm: ctx.workers.min > 0,
    }
}

fn repository(ctx: BuildCtx, kind: &str) -> Result<Arc<Repository>, KindError> {
    ctx.models.cloned().ok_or_else(|| KindError {
        field: "kind".into(),
        message: format!(
            "a {kind} function needs a model repository: set models: <folder> at the top of the config"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_found_by_name_and_built_from_params() {
        let thumbs = find("thumbnail").unwrap();
        let params: serde_yaml::Value = serde_yaml::from_str("{ sizes: [128] }").unwrap();
        let f = thumbs.build(&params, BuildCtx::default()).unwrap();
        assert!(f.limits().max_batch >= 1);
        let e = find("resize").err().unwrap();
        assert!(
            e.message.contains("thumbnail, keyframes, classify, infer"),
            "{e}"
        );
        let bad: serde_yaml::Value = serde_yaml::from_str("{ sizes: [nope] }").unwrap();
        let e = thumbs.build(&bad, BuildCtx::default()).err().unwrap();
        assert_eq!(e.field, "params.sizes[0]", "{e}");
        let e = find("classify")
            .unwrap()
            .build(
                &serde_yaml::from_str("{ model: m }").unwrap(),
                BuildCtx::default(),
            )
            .err()
            .unwrap();
        assert_eq!(e.field, "kind");
        assert!(e.message.contains("model repository"));
    }
}
