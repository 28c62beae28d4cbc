//! A function's hold on one model of the repository (`classify`, `infer`): the model loaded
//! again when it was unloaded — a cold start, timed in `weir_cold_start_seconds` — and let go
//! once the function has idled past `resources.workers.idle_after` (scale to zero), unless
//! `workers.min` keeps it warm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_models::{LoadedModel, Repository};

use crate::metric_names as m;
use crate::{FnError, Instances};

/// What a model-holding kind is told when it is built: its function's name, and whether
/// `workers.min` keeps it warm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hold<'a> {
    pub function: &'a str,
    pub keep_warm: bool,
}

impl Hold<'_> {
    pub fn model_ref(self, repo: Arc<Repository>, model: &str, version: Option<&str>) -> ModelRef {
        ModelRef::new(repo, self.function, model, version, self.keep_warm)
    }
}

pub struct ModelRef {
    repo: Arc<Repository>,
    function: String,
    model: String,
    version: Option<String>,
    /// `workers.min` above zero: provisioned; the repository never unloads the model for
    /// idling, whoever else uses it.
    keep_warm: bool,
}

impl ModelRef {
    pub fn new(
        repo: Arc<Repository>,
        function: &str,
        model: &str,
        version: Option<&str>,
        keep_warm: bool,
    ) -> ModelRef {
        if keep_warm {
            repo.keep_warm(model);
        }
        ModelRef {
            repo,
            function: function.to_string(),
            model: model.to_string(),
            version: version.map(str::to_string),
            keep_warm,
        }
    }

    /// The model, loaded again first when it was unloaded (timed as a cold start).
    pub fn get(&self) -> Result<Arc<LoadedModel>, FnError> {
        let started = Instant::now();
        let (model, cold) = self
            .repo
            .get_loading(&self.model, self.version.as_deref())
            .map_err(crate::infer::repo_error)?;
        if cold {
            let took = started.elapsed();
            metrics::histogram!(m::COLD_START, "function" => self.function.clone())
                .record(took.as_secs_f64());
            tracing::info!(function = %self.function, model = %self.model, ?took, "cold start: the model was loaded again");
        }
        Ok(model)
    }

    /// Unload the model when it has gone unused for `after` (by this function, by another, or
    /// over `/v2`) and nothing holds it. Whether it was unloaded.
    pub fn idle(&self, after: Duration) -> bool {
        !self.keep_warm && self.repo.unload_idle(&self.model, after)
    }

    /// One instance while the model is loaded, none once it was let go.
    pub fn instances(&self) -> Instances {
        let n = usize::from(self.repo.is_loaded(&self.model));
        Instances { idle: n, all: n }
    }
}
