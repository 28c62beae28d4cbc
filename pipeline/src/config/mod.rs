//! `weir.yaml`: parsed strictly (unknown keys are errors), then checked as a whole. Every error
//! names the file, the field and what was expected.

mod spec;
mod units;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use weir_functions::Function;
use weir_functions::thumbnail::{Thumbnail, ThumbnailParams};
use weir_gpu::{Device, Inventory};

pub use spec::{
    Batch, FunctionSpec, HttpTrigger, Kind, OutputSpec, Resources, Retries, S3Trigger, Trigger,
    TriggerEntry, Workers,
};

/// The file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub s3: S3Section,
    #[serde(default)]
    pub functions: Vec<FunctionSpec>,
    /// A folder of `*.yaml` files, one function spec each, added to `functions`.
    pub functions_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    pub listen: Option<SocketAddr>,
    pub token: Option<String>,
    pub inference_token: Option<String>,
}

/// The built-in S3 endpoint (served by the storage issue; its settings are read and kept now).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    pub listen: Option<SocketAddr>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
}

/// A config mistake: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// A checked function, ready for a pool.
#[derive(Clone)]
pub struct LoadedFunction {
    pub spec: FunctionSpec,
    pub function: Arc<dyn Function>,
    pub device: Device,
}

/// The whole file, checked.
pub struct Config {
    pub file: FileConfig,
    pub functions: Vec<LoadedFunction>,
}

impl Config {
    pub fn load(path: &Path, inventory: &Inventory) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(path, "(file)", format!("cannot read the config file: {e}")))?;
        Self::parse(path, &text, inventory)
    }

    /// Parse `text` as if read from `path` (tests use this with a made-up path).
    pub fn parse(path: &Path, text: &str, inventory: &Inventory) -> Result<Config, ConfigError> {
        let mut file: FileConfig = from_yaml(path, text, "")?;
        if let Some(dir) = &file.functions_dir {
            let dir = path.parent().unwrap_or(Path::new(".")).join(dir);
            file.functions.extend(read_functions_dir(&dir)?);
        }
        for (i, f) in file.functions.iter_mut().enumerate() {
            let source = f.source.clone().unwrap_or_else(|| path.to_path_buf());
            let entries = std::mem::take(&mut f.trigger_entries);
            f.triggers = entries
                .into_iter()
                .enumerate()
                .map(|(t, e)| {
                    e.into_trigger()
                        .map_err(|m| err(&source, &format!("functions[{i}].triggers[{t}]"), m))
                })
                .collect::<Result<_, _>>()?;
        }
        let functions = check(path, &file, inventory)?;
        Ok(Config { file, functions })
    }
}

fn err(path: &Path, field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: path.display().to_string(),
        field: field.to_string(),
        message: message.into(),
    }
}

/// Deserialize with the path of the failing field; `prefix` places a nested document.
fn from_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    prefix: &str,
) -> Result<T, ConfigError> {
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.path().to_string();
        let field = join(prefix, if inner == "." { "" } else { &inner });
        let message = strip_path(e.into_inner().to_string(), &inner);
        err(
            path,
            if field.is_empty() {
                "(top level)"
            } else {
                &field
            },
            message,
        )
    })
}

/// serde_yaml repeats the path at the start of its message; the field is reported on its own.
fn strip_path(message: String, path: &str) -> String {
    message
        .strip_prefix(&format!("{path}: "))
        .map(str::to_string)
        .unwrap_or(message)
}

fn join(prefix: &str, inner: &str) -> String {
    match (prefix.is_empty(), inner.is_empty()) {
        (true, _) => inner.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{inner}"),
    }
}

fn read_functions_dir(dir: &Path) -> Result<Vec<FunctionSpec>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| err(dir, "functions_dir", format!("cannot read the folder: {e}")))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .map_err(|e| err(p, "(file)", format!("cannot read: {e}")))?;
            let mut spec: FunctionSpec = from_yaml(p, &text, "")?;
            spec.source = Some(p.clone());
            Ok(spec)
        })
        .collect()
}

/// Paths Weir serves itself, which an `http` trigger may not take.
const RESERVED_PREFIXES: &[&str] = &["/v1", "/v2", "/healthz", "/metrics", "/openapi.json"];

fn check(
    path: &Path,
    file: &FileConfig,
    inventory: &Inventory,
) -> Result<Vec<LoadedFunction>, ConfigError> {
    let mut names = HashSet::new();
    let mut http_paths = HashSet::new();
    let mut out = Vec::new();
    for (i, f) in file.functions.iter().enumerate() {
        let path = f.source.as_deref().unwrap_or(path);
        let at = |field: &str| format!("functions[{i}].{field}");
        let valid_name = !f.name.is_empty()
            && f.name.len() <= 64
            && f.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(err(
                path,
                &at("name"),
                format!(
                    "expected 1 to 64 characters of a-z, 0-9, - or _ (it is part of a URL), got {:?}",
                    f.name
                ),
            ));
        }
        if !names.insert(f.name.clone()) {
            return Err(err(
                path,
                &at("name"),
                format!("function {:?} is defined twice", f.name),
            ));
        }
        for (t, trigger) in f.triggers.iter().enumerate() {
            if let Trigger::Http(h) = trigger {
                let field = at(&format!("triggers[{t}].http.path"));
                if !h.path.starts_with('/') || h.path.len() < 2 || h.path.contains(['{', '}', '*'])
                {
                    return Err(err(
                        path,
                        &field,
                        format!("expected a literal path such as /thumbs, got {:?}", h.path),
                    ));
                }
                if RESERVED_PREFIXES
                    .iter()
                    .any(|r| h.path == *r || h.path.starts_with(&format!("{r}/")))
                {
                    return Err(err(
                        path,
                        &field,
                        format!("{} is served by Weir itself; choose another path", h.path),
                    ));
                }
                if !http_paths.insert(h.path.clone()) {
                    return Err(err(
                        path,
                        &field,
                        format!("{} is already taken by another trigger", h.path),
                    ));
                }
            }
            if let Trigger::S3(s) = trigger
                && s.bucket.is_empty()
            {
                return Err(err(
                    path,
                    &at(&format!("triggers[{t}].s3.bucket")),
                    "expected a bucket name",
                ));
            }
        }
        check_resources(path, &f.resources, &at("resources"))?;
        let function: Arc<dyn Function> = match f.kind {
            Kind::Thumbnail => {
                let params: ThumbnailParams = params_of(path, &f.params, &at("params"))?;
                Arc::new(
                    Thumbnail::new(params)
                        .map_err(|(field, msg)| err(path, &at(&format!("params.{field}")), msg))?,
                )
            }
        };
        let device = f
            .resources
            .device
            .resolve(inventory, function.limits().gpu_capable)
            .map_err(|e| err(path, &at("resources.device"), e.to_string()))?;
        out.push(LoadedFunction {
            spec: f.clone(),
            function,
            device,
        });
    }
    Ok(out)
}

fn params_of<T: serde::de::DeserializeOwned>(
    path: &Path,
    value: &serde_yaml::Value,
    field: &str,
) -> Result<T, ConfigError> {
    if value.is_null() {
        return Err(err(
            path,
            field,
            "expected the function kind's params (a mapping)",
        ));
    }
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let message = strip_path(e.into_inner().to_string(), &inner);
        err(
            path,
            &join(field, if inner == "." { "" } else { &inner }),
            message,
        )
    })
}

fn check_resources(path: &Path, r: &Resources, at: &str) -> Result<(), ConfigError> {
    let f = |field: &str, msg: String| Err(err(path, &format!("{at}.{field}"), msg));
    if r.workers.max == 0 {
        return f("workers.max", "expected at least 1 worker".into());
    }
    if r.workers.min > r.workers.max {
        return f(
            "workers.min",
            format!(
                "expected at most workers.max ({}), got {}",
                r.workers.max, r.workers.min
            ),
        );
    }
    if r.batch.max_size == 0 || r.batch.max_size > 1024 {
        return f(
            "batch.max_size",
            format!("expected 1 to 1024, got {}", r.batch.max_size),
        );
    }
    if r.batch.max_delay > std::time::Duration::from_secs(10) {
        return f(
            "batch.max_delay",
            format!("expected at most 10s, got {:?}", r.batch.max_delay),
        );
    }
    if r.timeout.is_zero() {
        return f("timeout", "expected a positive duration".into());
    }
    if r.max_input == 0 {
        return f("max_input", "expected a positive size".into());
    }
    if r.queue > 1_000_000 {
        return f(
            "queue",
            format!("expected at most 1000000, got {}", r.queue),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
