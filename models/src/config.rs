//! `<repo>/<model>/config.yaml`: what Triton's `config.pbtxt` says, in YAML. Unknown fields are
//! refused with their path; inputs and outputs may be left out and are then read from the model
//! (Triton's auto-complete).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use weir_gpu::DeviceRequest;

use crate::tensor::DataType;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default)]
    pub backend: BackendChoice,
    /// Rows per batch at most; 0 means the model has no batch dimension (Triton's meaning).
    #[serde(default)]
    pub max_batch_size: usize,
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    #[serde(default)]
    pub dynamic_batching: Option<DynamicBatching>,
    #[serde(default)]
    pub instance_group: InstanceGroup,
    /// Run one batch of zeros at load, so the first request does not pay for lazy set-up.
    #[serde(default)]
    pub warmup: bool,
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    /// A text file next to config.yaml, one label per line, in output index order.
    #[serde(default)]
    pub labels: Option<String>,
    #[serde(default)]
    pub version_policy: VersionPolicy,
    #[serde(default)]
    pub parameters: EngineParameters,
}

/// Engine settings, named as Triton's onnxruntime backend names its `parameters`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineParameters {
    /// onnxruntime's threads within one run, per instance. Default: the cores shared out among
    /// the instances; fewer leave cores to request handling and to other models.
    #[serde(default)]
    pub intra_op_thread_count: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    #[default]
    Auto,
    Tract,
    Ort,
}

impl BackendChoice {
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Tract => "tract",
            BackendChoice::Ort => "ort",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    #[serde(deserialize_with = "datatype")]
    pub datatype: DataType,
    /// Without the batch dimension when `max_batch_size > 0`; -1 for a dimension of any size.
    pub dims: Vec<i64>,
}

fn datatype<'de, D: serde::Deserializer<'de>>(d: D) -> Result<DataType, D::Error> {
    let s = String::deserialize(d)?;
    DataType::parse(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown datatype {s:?}: use one of BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64"
        ))
    })
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatching {
    #[serde(default)]
    pub preferred_batch_size: Vec<usize>,
    #[serde(default = "default_delay", with = "humantime_serde_compat")]
    pub max_queue_delay: Duration,
}

fn default_delay() -> Duration {
    Duration::from_millis(1)
}

/// `2ms`-style durations without another dependency.
mod humantime_serde_compat {
    use serde::Deserialize;
    use std::time::Duration;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    #[serde(default = "one")]
    pub count: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: DeviceRequest,
}

fn one() -> usize {
    1
}

impl Default for InstanceGroup {
    fn default() -> Self {
        InstanceGroup {
            count: 1,
            device: DeviceRequest::Auto,
        }
    }
}

/// Which versions under the model's folder are served: `latest`, `all` or `{ specific: [1, 3] }`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum VersionPolicy {
    /// The highest-numbered version only (Triton's default).
    #[default]
    Latest,
    All,
    Specific(Vec<u64>),
}

impl<'de> Deserialize<'de> for VersionPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // serde_yaml wants tags for enums with data; a plain map reads better in a config.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Specific { specific: Vec<u64> },
        }
        match Raw::deserialize(d)? {
            Raw::Name(n) if n == "latest" => Ok(VersionPolicy::Latest),
            Raw::Name(n) if n == "all" => Ok(VersionPolicy::All),
            Raw::Specific { specific } if !specific.is_empty() => {
                Ok(VersionPolicy::Specific(specific))
            }
            _ => Err(serde::de::Error::custom(
                "expected latest, all, or { specific: [versions] }",
            )),
        }
    }
}

/// How an image becomes the model's input tensor (for `classify`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The shorter side is resized to this many pixels (aspect kept).
    pub resize: u32,
    /// Then a centred square of this size is cut out.
    pub crop: u32,
    #[serde(default)]
    pub filter: Filter,
    /// Per channel, in the model's channel order: `x = (pixel - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub channels: Channels,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Filter {
    /// Area-aware bilinear, as Pillow's BILINEAR when shrinking.
    #[default]
    Bilinear,
    Bicubic,
    Lanczos3,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}: {path}: {message}")]
pub struct ConfigError {
    pub file: String,
    /// The field, as `inputs[0].dims`.
    pub path: String,
    pub message: String,
}

impl ModelConfig {
    /// Parse and check one `config.yaml` (its own consistency; the model file is checked at load).
    pub fn parse(text: &str, file: &Path) -> Result<ModelConfig, ConfigError> {
        let file_name = file.display().to_string();
        let err = |path: &str, message: String| ConfigError {
            file: file_name.clone(),
            path: path.to_string(),
            message,
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let cfg: ModelConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            err(&path, e.into_inner().to_string())
        })?;
        cfg.check().map_err(|(path, m)| err(&path, m))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), (String, String)> {
        for (list, specs) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (i, s) in specs.iter().enumerate() {
                if s.name.is_empty() {
                    return Err((format!("{list}[{i}].name"), "must not be empty".into()));
                }
                if specs[..i].iter().any(|o| o.name == s.name) {
                    return Err((format!("{list}[{i}].name"), format!("{:?} twice", s.name)));
                }
                if s.datatype == DataType::Bytes {
                    return Err((
                        format!("{list}[{i}].datatype"),
                        "BYTES tensors are not supported by the ONNX backends here".into(),
                    ));
                }
                if let Some(d) = s.dims.iter().find(|d| **d == 0 || **d < -1) {
                    return Err((
                        format!("{list}[{i}].dims"),
                        format!("{d} is not a size: use a positive number, or -1 for any size"),
                    ));
                }
            }
        }
        if let Some(b) = &self.dynamic_batching {
            if self.max_batch_size == 0 {
                return Err((
                    "dynamic_batching".into(),
                    "needs max_batch_size > 0 (the model must take a batch dimension)".into(),
                ));
            }
            if let Some(p) = b
                .preferred_batch_size
                .iter()
                .find(|p| **p == 0 || **p > self.max_batch_size)
            {
                return Err((
                    "dynamic_batching.preferred_batch_size".into(),
                    format!("{p} is not within 1..={}", self.max_batch_size),
                ));
            }
        }
        if self.instance_group.count == 0 {
            return Err(("instance_group.count".into(), "must be at least 1".into()));
        }
        if self.parameters.intra_op_thread_count == Some(0) {
            return Err((
                "parameters.intra_op_thread_count".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(p) = &self.preprocess {
            if p.resize == 0 || p.crop == 0 || p.crop > p.resize {
                return Err((
                    "preprocess.crop".into(),
                    format!("crop {} must be within 1..=resize ({})", p.crop, p.resize),
                ));
            }
            if let Some(i) = p.std.iter().position(|s| *s == 0.0 || !s.is_finite()) {
                return Err((
                    format!("preprocess.std[{i}]"),
                    "must be a non-zero number".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ModelConfig, ConfigError> {
        ModelConfig::parse(yaml, Path::new("m/config.yaml"))
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            r#"
backend: tract
max_batch_size: 8
inputs: [{ name: input, datatype: FP32, dims: [3, 224, 224] }]
outputs: [{ name: logits, datatype: TYPE_FP32, dims: [1000] }]
dynamic_batching: { preferred_batch_size: [4, 8], max_queue_delay: 2ms }
instance_group: { count: 2, device: cpu }
warmup: true
preprocess: { resize: 256, crop: 224, mean: [127, 127, 127], std: [128, 128, 128] }
labels: labels.txt
version_policy: all
"#,
        )
        .unwrap();
        assert_eq!(c.inputs[0].datatype, DataType::Fp32);
        assert_eq!(c.outputs[0].dims, vec![1000]);
        let b = c.dynamic_batching.unwrap();
        assert_eq!(b.max_queue_delay, Duration::from_millis(2));
        assert_eq!(c.version_policy, VersionPolicy::All);
        assert_eq!(c.preprocess.unwrap().layout, Layout::Nchw);
        let minimal = parse("max_batch_size: 4").unwrap();
        assert_eq!(minimal.backend, BackendChoice::Auto);
        assert_eq!(minimal.version_policy, VersionPolicy::Latest);
        assert_eq!(
            parse("version_policy: { specific: [1, 3] }")
                .unwrap()
                .version_policy,
            VersionPolicy::Specific(vec![1, 3])
        );
        assert!(parse("version_policy: newest").is_err());
    }

    #[test]
    fn mistakes_name_their_field() {
        for (yaml, path, words) in [
            ("max_batch_sise: 4", "", "unknown field"),
            (
                "inputs: [{ name: x, datatype: FLOAT, dims: [3] }]",
                "inputs[0].datatype",
                "unknown datatype",
            ),
            (
                "inputs: [{ name: x, datatype: FP32, dims: [0] }]",
                "inputs[0].dims",
                "not a size",
            ),
            (
                "outputs: [{ name: y, datatype: FP32, dims: [1] }, { name: y, datatype: FP32, dims: [1] }]",
                "outputs[1].name",
                "twice",
            ),
            (
                "dynamic_batching: { max_queue_delay: 1ms }",
                "dynamic_batching",
                "max_batch_size",
            ),
            (
                "max_batch_size: 4\ndynamic_batching: { preferred_batch_size: [8] }",
                "dynamic_batching.preferred_batch_size",
                "1..=4",
            ),
            (
                "max_batch_size: 4\ndynamic_batching: { max_queue_delay: soon }",
                "dynamic_batching.max_queue_delay",
                "soon",
            ),
            (
                "preprocess: { resize: 200, crop: 224, mean: [0, 0, 0], std: [1, 1, 1] }",
                "preprocess.crop",
                "within",
            ),
            (
                "preprocess: { resize: 256, crop: 224, mean: [0, 0, 0], std: [1, 0, 1] }",
                "preprocess.std[1]",
                "non-zero",
            ),
            ("backend: onnx", "backend", "unknown variant"),
            (
                "parameters: { intra_op_thread_count: 0 }",
                "parameters.intra_op_thread_count",
                "at least 1",
            ),
            ("parameters: { threads: 2 }", "parameters", "unknown field"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(
                e.path.starts_with(path) && e.message.contains(words),
                "{yaml}: {e}"
            );
            assert!(e.to_string().starts_with("m/config.yaml: "), "{e}");
        }
    }
}
