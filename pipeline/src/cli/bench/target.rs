//! What `weir bench` measures, as the server describes it: a model (its inputs' names, types and
//! shapes, its largest batch, its device, from `/v2/models/M` and its config) or a function (its
//! device, from `/v1/functions`); the request bodies for one point; and the server's own queue
//! and compute times, read before and after the window.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;

use super::load::Body;

/// Input name → the sizes of its dimensions after the batch, as perf_analyzer's `--shape`.
pub type Shapes = std::collections::HashMap<String, Vec<usize>>;

/// `NAME:D1,D2,...` as `--shape` takes it.
pub fn parse_shape(s: &str) -> anyhow::Result<(String, Vec<usize>)> {
    let bad = || anyhow::anyhow!("--shape {s:?}: expected NAME:D1,D2,... (sizes after the batch)");
    let (name, dims) = s.rsplit_once(':').ok_or_else(bad)?;
    let dims = dims
        .split(',')
        .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(bad)?;
    if name.is_empty() {
        return Err(bad());
    }
    Ok((name.to_string(), dims))
}
use super::report::ServerTimes;

/// How many distinct random bodies a model's clients cycle through.
pub const MODEL_BODIES: usize = 4;

/// A model's input as its metadata gives it; `-1` is a variable dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
}

#[derive(Debug)]
pub enum Target {
    Model {
        name: String,
        inputs: Vec<Input>,
        max_batch: usize,
        device: String,
        /// `--shape NAME:D1,D2`: the sizes of an input's dimensions after the batch.
        shapes: Shapes,
    },
    Function {
        name: String,
        device: String,
        files: Arc<Vec<bytes::Bytes>>,
    },
}

/// The server's base URL and how to reach it.
pub struct Server {
    pub base: String,
    /// Started in this process: its GPUs are this machine's, so their memory can be read here.
    pub local: bool,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

impl Server {
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("cannot reach {url}"))?;
        let status = res.status().as_u16();
        let text = res.text().await.context("the reply could not be read")?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    async fn get_ok(&self, path: &str, what: &str) -> anyhow::Result<Value> {
        let (status, v) = self.get(path).await?;
        if status != 200 {
            let reason = v["error"]
                .as_str()
                .map_or_else(|| v.to_string(), str::to_string);
            bail!("{what}: the server answered {status}: {reason}");
        }
        Ok(v)
    }
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Model { name, .. } | Target::Function { name, .. } => name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Target::Model { .. } => "model",
            Target::Function { .. } => "function",
        }
    }

    pub fn device(&self) -> &str {
        match self {
            Target::Model { device, .. } | Target::Function { device, .. } => device,
        }
    }

    pub async fn model(server: &Server, name: &str, shapes: Shapes) -> anyhow::Result<Target> {
        let what = format!("model {name:?}");
        let meta = server.get_ok(&format!("/v2/models/{name}"), &what).await?;
        let config = server
            .get_ok(&format!("/v2/models/{name}/config"), &what)
            .await?;
        let inputs = meta["inputs"]
            .as_array()
            .context("the model's metadata lists no inputs")?
            .iter()
            .map(|i| Input {
                name: i["name"].as_str().unwrap_or_default().to_string(),
                datatype: i["datatype"].as_str().unwrap_or_default().to_string(),
                shape: i["shape"]
                    .as_array()
                    .map(|s| s.iter().filter_map(Value::as_i64).collect())
                    .unwrap_or_default(),
            })
            .collect::<Vec<Input>>();
        if let Some(unknown) = shapes
            .keys()
            .find(|k| !inputs.iter().any(|i| &i.name == *k))
        {
            let names: Vec<&str> = inputs.iter().map(|i| i.name.as_str()).collect();
            bail!(
                "--shape names {unknown:?}, which is not an input of {what} ({})",
                names.join(", ")
            );
        }
        let group = &config["instance_group"][0];
        let device = match (group["kind"].as_str(), group["gpus"][0].as_u64()) {
            (Some("KIND_GPU"), Some(n)) => format!("cuda:{n}"),
            _ => "cpu".to_string(),
        };
        Ok(Target::Model {
            name: name.to_string(),
            inputs,
            max_batch: config["max_batch_size"].as_u64().unwrap_or(0) as usize,
            device,
            shapes,
        })
    }

    pub async fn function(
        server: &Server,
        name: &str,
        files: Vec<PathBuf>,
    ) -> anyhow::Result<Target> {
        let all = server.get_ok("/v1/functions", "the function list").await?;
        let list = all["functions"].as_array().or(all.as_array());
        let found = list.into_iter().flatten().find(|f| f["name"] == name);
        let Some(f) = found else {
            let names: Vec<&str> = list
                .into_iter()
                .flatten()
                .filter_map(|f| f["name"].as_str())
                .collect();
            bail!(
                "the server has no function {name:?} (it has: {})",
                names.join(", ")
            );
        };
        let files = files
            .iter()
            .map(|p| {
                std::fs::read(p)
                    .map(bytes::Bytes::from)
                    .with_context(|| format!("cannot read {}", p.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Target::Function {
            name: name.to_string(),
            device: f["device"].as_str().unwrap_or("cpu").to_string(),
            files: Arc::new(files),
        })
    }

    /// The URL a point's requests go to.
    pub fn url(&self, base: &str) -> String {
        match self {
            Target::Model { name, .. } => format!("{base}/v2/models/{name}/infer"),
            Target::Function { name, .. } => format!("{base}/v1/functions/{name}/invoke"),
        }
    }

    /// A few distinct bodies for one point: a model's are random tensors of `batch` rows (as
    /// perf_analyzer sends without real data), a function's are the input files.
    pub fn bodies(&self, batch: usize) -> anyhow::Result<Vec<Body>> {
        match self {
            Target::Function { files, .. } => Ok(files
                .iter()
                .map(|b| Body {
                    bytes: b.clone(),
                    header_len: None,
                })
                .collect()),
            Target::Model {
                name,
                inputs,
                max_batch,
                shapes,
                ..
            } => {
                if *max_batch == 0 && batch != 1 {
                    bail!("model {name:?} does not batch (max_batch_size 0): use --batch 1");
                }
                if batch > *max_batch && *max_batch > 0 {
                    bail!("batch {batch} is over model {name:?}'s max_batch_size {max_batch}");
                }
                (0..MODEL_BODIES as u64)
                    .map(|seed| model_body(inputs, shapes, *max_batch > 0, batch, seed))
                    .collect()
            }
        }
    }

    /// The server's counters behind its queue and compute times, now.
    pub async fn times(&self, server: &Server) -> anyhow::Result<Counters> {
        match self {
            Target::Model { name, .. } => {
                let v = server
                    .get_ok(
                        &format!("/v2/models/{name}/stats"),
                        "the model's statistics",
                    )
                    .await?;
                let s = &v["model_stats"][0]["inference_stats"];
                let ns = |k: &str| s[k]["ns"].as_f64().unwrap_or(0.0);
                Ok(Counters {
                    queue_s: ns("queue") / 1e9,
                    queue_n: s["queue"]["count"].as_f64().unwrap_or(0.0),
                    compute_s: (ns("compute_input") + ns("compute_infer") + ns("compute_output"))
                        / 1e9,
                    compute_n: s["compute_infer"]["count"].as_f64().unwrap_or(0.0),
                })
            }
            Target::Function { name, .. } => {
                let text = match server.get("/metrics").await? {
                    (200, Value::String(t)) => t,
                    (status, _) => bail!("/metrics answered {status}"),
                };
                let (queue_s, queue_n) =
                    histogram(&text, weir_workers::metric_names::QUEUE_WAIT, name);
                let (compute_s, compute_n) =
                    histogram(&text, weir_workers::metric_names::FUNCTION_DURATION, name);
                Ok(Counters {
                    queue_s,
                    queue_n,
                    compute_s,
                    compute_n,
                })
            }
        }
    }
}

/// Cumulative seconds and counts behind the server's times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    queue_s: f64,
    queue_n: f64,
    compute_s: f64,
    compute_n: f64,
}

impl Counters {
    /// Mean milliseconds per request between `self` (window open) and `later` (window close).
    pub fn per_request(&self, later: &Counters) -> ServerTimes {
        let mean = |s: f64, n: f64| (n > 0.0).then(|| s / n * 1e3);
        ServerTimes {
            queue_ms: mean(later.queue_s - self.queue_s, later.queue_n - self.queue_n),
            compute_ms: mean(
                later.compute_s - self.compute_s,
                later.compute_n - self.compute_n,
            ),
        }
    }
}

/// `name`'s `_sum` and `_count` for `function` in Prometheus text; zeros before its first value.
fn histogram(text: &str, name: &str, function: &str) -> (f64, f64) {
    let label = format!("function=\"{function}\"");
    let read = |suffix: &str| {
        let prefix = format!("{name}_{suffix}{{");
        text.lines()
            .filter(|l| l.starts_with(&prefix) && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (read("sum"), read("count"))
}

/// An input's whole shape for one request: the batch first where the model batches, then
/// the model's fixed sizes, or `given`'s where the model leaves a dimension open.
fn request_shape(
    i: &Input,
    given: Option<&Vec<usize>>,
    batched: bool,
    batch: usize,
) -> anyhow::Result<Vec<usize>> {
    let rest = if batched {
        &i.shape[1.min(i.shape.len())..]
    } else {
        &i.shape[..]
    };
    let shape: Vec<usize> = match given {
        Some(g) => {
            let fits = g.len() == rest.len()
                && g.iter().zip(rest).all(|(&g, &m)| m < 0 || m as usize == g);
            if !fits {
                bail!(
                    "--shape {}:{g:?} does not fit the model's shape {:?}",
                    i.name,
                    i.shape
                );
            }
            g.clone()
        }
        None if rest.iter().any(|&d| d < 1) => bail!(
            "input {:?} has a variable dimension (shape {:?}): give its sizes after the batch \
             with --shape {}:{}",
            i.name,
            i.shape,
            i.name,
            vec!["N"; rest.len()].join(",")
        ),
        None => rest.iter().map(|&d| d as usize).collect(),
    };
    Ok(if batched {
        std::iter::once(batch).chain(shape).collect()
    } else {
        shape
    })
}

/// An Open Inference request with every input as binary data, `batch` rows of pseudo-random
/// values (small, so integer models do not overflow and float models see no NaN).
fn model_body(
    inputs: &[Input],
    shapes: &Shapes,
    batched: bool,
    batch: usize,
    seed: u64,
) -> anyhow::Result<Body> {
    let mut specs = Vec::new();
    let mut data = Vec::new();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in inputs {
        let shape = request_shape(i, shapes.get(&i.name), batched, batch)?;
        let n: usize = shape.iter().product();
        let width = match i.datatype.as_str() {
            "FP32" | "INT32" | "UINT32" => 4,
            "FP64" | "INT64" | "UINT64" => 8,
            "INT16" | "UINT16" | "FP16" => 2,
            "INT8" | "UINT8" | "BOOL" => 1,
            other => bail!(
                "input {:?} is {other}: weir bench cannot make such data",
                i.name
            ),
        };
        let start = data.len();
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let small = (state % 4) as u8;
            match i.datatype.as_str() {
                "FP32" => data.extend((state as u32 as f32 / u32::MAX as f32).to_le_bytes()),
                "FP64" => data.extend((state as u32 as f64 / u32::MAX as f64).to_le_bytes()),
                // FP16's bit pattern for 0.0–1.0 stays below 0x3C00.
                "FP16" => data.extend(((state % 0x3C00) as u16).to_le_bytes()),
                _ => {
                    data.push(small);
                    data.extend(std::iter::repeat_n(0, width - 1));
                }
            }
        }
        specs.push(serde_json::json!({
            "name": i.name, "shape": shape, "datatype": i.datatype,
            "parameters": {"binary_data_size": data.len() - start},
        }));
    }
    let head = serde_json::json!({
        "inputs": specs,
        "parameters": {"binary_data_output": true},
    })
    .to_string();
    let header_len = head.len();
    let mut bytes = head.into_bytes();
    bytes.extend(data);
    Ok(Body {
        bytes: bytes.into(),
        header_len: Some(header_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_body_has_batch_rows_of_each_input() {
        let inputs = vec![
            Input {
                name: "x".into(),
                datatype: "FP32".into(),
                shape: vec![-1, 3],
            },
            Input {
                name: "y".into(),
                datatype: "INT64".into(),
                shape: vec![-1, 2],
            },
        ];
        let b = model_body(&inputs, &Shapes::new(), true, 5, 1).unwrap();
        let n = b.header_len.unwrap();
        let head: Value = serde_json::from_slice(&b.bytes[..n]).unwrap();
        assert_eq!(head["inputs"][0]["shape"], serde_json::json!([5, 3]));
        assert_eq!(head["inputs"][0]["parameters"]["binary_data_size"], 60);
        assert_eq!(head["inputs"][1]["parameters"]["binary_data_size"], 80);
        assert_eq!(b.bytes.len(), n + 140);
        let floats = b.bytes[n..n + 60].chunks(4);
        assert!(
            floats
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .all(|v| (0.0..=1.0).contains(&v))
        );
        let inner = Input {
            name: "z".into(),
            datatype: "FP32".into(),
            shape: vec![-1, -1],
        };
        let e = model_body(std::slice::from_ref(&inner), &Shapes::new(), true, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("--shape z:N"), "{e}");
        let given = Shapes::from([("z".to_string(), vec![6])]);
        let b = model_body(std::slice::from_ref(&inner), &given, true, 4, 1).unwrap();
        assert_eq!(b.bytes.len(), b.header_len.unwrap() + 4 * 6 * 4);
        let wrong = Shapes::from([("x".to_string(), vec![4])]);
        let e = model_body(&inputs, &wrong, true, 1, 1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit the model's shape [-1, 3]"), "{e}");
        assert_eq!(
            parse_shape("INPUT0:16,8").unwrap(),
            ("INPUT0".into(), vec![16, 8])
        );
        assert!(parse_shape("INPUT0").is_err() && parse_shape("x:0").is_err());
    }

    #[test]
    fn server_times_are_per_request_over_the_window() {
        let text = "weir_queue_wait_seconds_sum{function=\"a\"} 1.5\n\
                    weir_queue_wait_seconds_count{function=\"a\"} 10\n\
                    weir_queue_wait_seconds_sum{function=\"ab\"} 99\n";
        assert_eq!(histogram(text, "weir_queue_wait_seconds", "a"), (1.5, 10.0));
        assert_eq!(
            histogram(text, "weir_function_duration_seconds", "a"),
            (0.0, 0.0)
        );
        let before = Counters {
            queue_s: 1.0,
            queue_n: 10.0,
            ..Counters::default()
        };
        let after = Counters {
            queue_s: 1.5,
            queue_n: 20.0,
            ..Counters::default()
        };
        let t = before.per_request(&after);
        assert_eq!(t.queue_ms, Some(50.0));
        assert_eq!(t.compute_ms, None);
    }
}
