//! The Open Inference Protocol's infer body (KServe v2, as Triton serves it): JSON tensors, and
//! the binary tensor data extension where the JSON header is followed by raw tensor bytes
//! (`Inference-Header-Content-Length` says where the JSON ends).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::tensor::{DataType, Tensor};

/// A parsed request: the tensors, and which outputs are wanted and how.
#[derive(Debug, Clone, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// Outputs asked for by name (empty: all of the model's), each with its binary flag.
    pub outputs: Vec<(String, Option<bool>)>,
    /// `parameters.binary_data_output`: the default for outputs not listed.
    pub binary_default: bool,
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<RawInput>,
    #[serde(default)]
    outputs: Vec<RawOutput>,
}

#[derive(Deserialize)]
struct RawInput {
    name: String,
    shape: Vec<u64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RawOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// Parse a request body. `header_length` is the `Inference-Header-Content-Length` header: the
/// JSON is that many bytes and the binary tensors follow, in input order.
pub fn parse_request(body: &[u8], header_length: Option<usize>) -> Result<InferRequest, String> {
    let (head, mut tail) = match header_length {
        Some(n) if n > body.len() => {
            return Err(format!(
                "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                body.len()
            ));
        }
        Some(0) => {
            return Err("a raw binary body (Inference-Header-Content-Length: 0) is not supported: send a JSON header".into());
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let raw: RawRequest =
        serde_json::from_slice(head).map_err(|e| format!("the request is not valid JSON: {e}"))?;
    let mut inputs = Vec::with_capacity(raw.inputs.len());
    for i in raw.inputs {
        let datatype = DataType::parse(&i.datatype)
            .ok_or_else(|| format!("input '{}': unknown datatype {:?}", i.name, i.datatype))?;
        let shape: Vec<usize> = i.shape.iter().map(|d| *d as usize).collect();
        let binary = i.parameters.get("binary_data_size");
        let data = match (binary, &i.data) {
            (Some(size), None) => {
                let size = size.as_u64().ok_or_else(|| {
                    format!("input '{}': binary_data_size must be a number", i.name)
                })? as usize;
                if size > tail.len() {
                    return Err(format!(
                        "input '{}': binary_data_size is {size} but only {} bytes of binary data remain",
                        i.name,
                        tail.len()
                    ));
                }
                let (mine, rest) = tail.split_at(size);
                tail = rest;
                mine.to_vec()
            }
            (None, Some(values)) => json_to_bytes(&i.name, datatype, values)?,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "input '{}': give either data or binary_data_size, not both",
                    i.name
                ));
            }
            (None, None) => return Err(format!("input '{}': no data", i.name)),
        };
        inputs.push(Tensor::new(i.name, datatype, shape, data)?);
    }
    if !tail.is_empty() {
        return Err(format!(
            "unexpected additional input data: {} bytes after the last binary input",
            tail.len()
        ));
    }
    let flag = |p: &Map<String, Value>, key: &str| p.get(key).and_then(Value::as_bool);
    Ok(InferRequest {
        id: raw.id.filter(|s| !s.is_empty()),
        inputs,
        outputs: raw
            .outputs
            .into_iter()
            .map(|o| {
                let binary = flag(&o.parameters, "binary_data");
                (o.name, binary)
            })
            .collect(),
        binary_default: flag(&raw.parameters, "binary_data_output").unwrap_or(false),
    })
}

/// JSON `data` (flat or nested, row-major) to little-endian bytes.
fn json_to_bytes(name: &str, dt: DataType, values: &Value) -> Result<Vec<u8>, String> {
    let mut flat = Vec::new();
    flatten(values, &mut flat);
    let size = dt
        .size()
        .ok_or_else(|| format!("input '{name}': {dt} is not supported"))?;
    if dt == DataType::Fp16 {
        return Err(format!(
            "input '{name}': FP16 data cannot be sent as JSON; use binary data"
        ));
    }
    let mut out = Vec::with_capacity(flat.len() * size);
    for (n, v) in flat.iter().enumerate() {
        let bad = || format!("input '{name}': element {n} ({v}) is not a valid {dt}");
        match dt {
            DataType::Bool => out.push(v.as_bool().ok_or_else(bad)? as u8),
            DataType::Fp32 => out.extend((v.as_f64().ok_or_else(bad)? as f32).to_le_bytes()),
            DataType::Fp64 => out.extend(v.as_f64().ok_or_else(bad)?.to_le_bytes()),
            DataType::Uint8 | DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => {
                let x = v.as_u64().ok_or_else(bad)?;
                if size < 8 && x >> (size * 8) != 0 {
                    return Err(bad());
                }
                out.extend(&x.to_le_bytes()[..size]);
            }
            _ => {
                let x = v.as_i64().ok_or_else(bad)?;
                let bits = size * 8;
                if bits < 64 && (x < -(1i64 << (bits - 1)) || x >= 1i64 << (bits - 1)) {
                    return Err(bad());
                }
                out.extend(&x.to_le_bytes()[..size]);
            }
        }
    }
    Ok(out)
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// Little-endian bytes to JSON numbers (FP32 written through f64, as Triton writes them).
fn bytes_to_json(t: &Tensor) -> Result<Vec<Value>, String> {
    let size = t.datatype.size().unwrap_or(1);
    let c = t.data.chunks_exact(size);
    let mut b8 = [0u8; 8];
    let mut wide = |x: &[u8]| {
        b8 = [0; 8];
        b8[..x.len()].copy_from_slice(x);
        b8
    };
    Ok(match t.datatype {
        DataType::Bool => c.map(|x| json!(x[0] != 0)).collect(),
        DataType::Fp32 => c
            .map(|x| json!(f32::from_le_bytes([x[0], x[1], x[2], x[3]]) as f64))
            .collect(),
        DataType::Fp64 => c.map(|x| json!(f64::from_le_bytes(wide(x)))).collect(),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => {
            c.map(|x| json!(u64::from_le_bytes(wide(x)))).collect()
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => c
            .map(|x| {
                let shift = 64 - 8 * x.len() as u32;
                json!((i64::from_le_bytes(wide(x)) << shift) >> shift)
            })
            .collect(),
        DataType::Fp16 | DataType::Bytes => {
            return Err(format!(
                "output '{}': {} cannot be returned as JSON; ask for binary data",
                t.name, t.datatype
            ));
        }
    })
}

/// A response body: the JSON header, then the binary outputs. Returns the body and, when any
/// output is binary, the JSON header's length for `Inference-Header-Content-Length`.
pub fn encode_response(
    model: &str,
    version: u64,
    id: Option<&str>,
    outputs: &[(Tensor, bool)],
) -> Result<(Vec<u8>, Option<usize>), String> {
    let mut listed = Vec::with_capacity(outputs.len());
    let mut binary = Vec::new();
    for (t, as_binary) in outputs {
        let mut o = json!({"name": t.name, "datatype": t.datatype.name(), "shape": t.shape});
        if *as_binary {
            o["parameters"] = json!({"binary_data_size": t.data.len()});
            binary.extend_from_slice(&t.data);
        } else {
            o["data"] = Value::Array(bytes_to_json(t)?);
        }
        listed.push(o);
    }
    let mut head =
        json!({"model_name": model, "model_version": version.to_string(), "outputs": listed});
    if let Some(id) = id {
        head["id"] = json!(id);
    }
    let mut body = serde_json::to_vec(&head).map_err(|e| e.to_string())?;
    let any_binary = outputs.iter().any(|(_, b)| *b);
    let header_length = any_binary.then_some(body.len());
    body.extend_from_slice(&binary);
    Ok((body, header_length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_tensors_flat_or_nested() {
        let body = br#"{"id":"a","inputs":[
            {"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3.5,4]]},
            {"name":"m","shape":[3],"datatype":"INT8","data":[-128,0,127]},
            {"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]}],
            "outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#;
        let r = parse_request(body, None).unwrap();
        assert_eq!(r.id.as_deref(), Some("a"));
        assert_eq!(r.inputs[0].to_f32().unwrap(), vec![1.0, 2.0, 3.5, 4.0]);
        assert_eq!(r.inputs[1].data, vec![0x80, 0, 0x7f]);
        assert_eq!(r.inputs[2].data, vec![1, 0]);
        assert_eq!(r.outputs, vec![("y".to_string(), Some(true))]);
        assert!(!r.binary_default);
    }

    #[test]
    fn binary_tensors_follow_the_header() {
        let head = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}],"parameters":{"binary_data_output":true}}"#;
        let mut body = head.to_vec();
        body.extend(1.5f32.to_le_bytes());
        body.extend(2.5f32.to_le_bytes());
        let r = parse_request(&body, Some(head.len())).unwrap();
        assert_eq!(r.inputs[0].to_f32().unwrap(), vec![1.5, 2.5]);
        assert!(r.binary_default);
        // Truncated, extra bytes, a header longer than the body.
        let e = parse_request(&body[..body.len() - 1], Some(head.len())).unwrap_err();
        assert!(e.contains("binary_data_size is 8"), "{e}");
        let mut extra = body.clone();
        extra.push(0);
        let e = parse_request(&extra, Some(head.len())).unwrap_err();
        assert!(e.contains("unexpected additional input data"), "{e}");
        assert!(parse_request(&body, Some(body.len() + 1)).is_err());
    }

    #[test]
    fn bad_requests_say_which_tensor() {
        for (body, words) in [
            (
                &br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}"#[..],
                "'x': 8 bytes",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#,
                "unknown datatype",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[300]}]}"#,
                "not a valid INT8",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["a"]}]}"#,
                "not a valid FP32",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}"#,
                "no data",
            ),
            (
                br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[1]}]}"#,
                "FP16",
            ),
            (br#"{"inputs": 5}"#, "not valid JSON"),
            (br#"not json"#, "not valid JSON"),
        ] {
            let e = parse_request(body, None).unwrap_err();
            assert!(e.contains(words), "{}: {e}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn responses_mix_json_and_binary_outputs() {
        let y = Tensor::from_f32("y", vec![2], &[0.5, -1.0]);
        let z = Tensor::new(
            "z",
            DataType::Int64,
            vec![1],
            (-3i64).to_le_bytes().to_vec(),
        )
        .unwrap();
        let (body, len) = encode_response(
            "m",
            1,
            Some("r1"),
            &[(y.clone(), false), (z.clone(), false)],
        )
        .unwrap();
        assert_eq!(len, None);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["outputs"][0]["data"], json!([0.5, -1.0]));
        assert_eq!(v["outputs"][1]["data"], json!([-3]));
        assert_eq!(
            (v["id"].as_str(), v["model_version"].as_str()),
            (Some("r1"), Some("1"))
        );
        let (body, len) = encode_response("m", 1, None, &[(y, true), (z, false)]).unwrap();
        let n = len.unwrap();
        let v: Value = serde_json::from_slice(&body[..n]).unwrap();
        assert_eq!(v["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(v["outputs"][0].get("data").is_none());
        assert_eq!(&body[n..], &[0, 0, 0, 0x3f, 0, 0, 0x80, 0xbf]);
        assert!(v.get("id").is_none());
    }
}
