//! Named tensors as the Open Inference Protocol carries them: a datatype, a shape and the elements
//! as little-endian bytes in row-major order. Backends and codecs convert at their edges only.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The element types of the Open Inference Protocol (Triton's names: `FP32`; config `TYPE_FP32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

impl DataType {
    pub const ALL: [DataType; 13] = [
        DataType::Bool,
        DataType::Uint8,
        DataType::Uint16,
        DataType::Uint32,
        DataType::Uint64,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Fp16,
        DataType::Fp32,
        DataType::Fp64,
        DataType::Bytes,
    ];

    /// The protocol's name (`FP32`).
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp16 => "FP16",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
            DataType::Bytes => "BYTES",
        }
    }

    /// Triton's model-configuration name (`TYPE_FP32`; BYTES is `TYPE_STRING`).
    pub fn config_name(self) -> String {
        match self {
            DataType::Bytes => "TYPE_STRING".into(),
            other => format!("TYPE_{}", other.name()),
        }
    }

    pub fn parse(s: &str) -> Option<DataType> {
        let s = s.strip_prefix("TYPE_").unwrap_or(s);
        if s.eq_ignore_ascii_case("STRING") {
            return Some(DataType::Bytes);
        }
        DataType::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
    }

    /// Bytes per element; `None` for BYTES, whose elements carry their own lengths.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DataType::Bool | DataType::Uint8 | DataType::Int8 => 1,
            DataType::Uint16 | DataType::Int16 | DataType::Fp16 => 2,
            DataType::Uint32 | DataType::Int32 | DataType::Fp32 => 4,
            DataType::Uint64 | DataType::Int64 | DataType::Fp64 => 8,
            DataType::Bytes => return None,
        })
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One named tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub datatype: DataType,
    pub shape: Vec<usize>,
    /// Row-major elements, little-endian.
    pub data: Vec<u8>,
}

impl Tensor {
    pub fn elements(shape: &[usize]) -> Option<usize> {
        shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d))
    }

    /// A tensor whose byte size is checked against its shape and datatype.
    pub fn new(
        name: impl Into<String>,
        datatype: DataType,
        shape: Vec<usize>,
        data: Vec<u8>,
    ) -> Result<Tensor, String> {
        let name = name.into();
        let size = datatype
            .size()
            .ok_or_else(|| format!("input '{name}': datatype BYTES is not supported"))?;
        let want = Tensor::elements(&shape)
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| format!("input '{name}': shape {shape:?} is too large"))?;
        if data.len() != want {
            return Err(format!(
                "input '{name}': {} bytes of data, but shape {shape:?} of {datatype} needs {want}",
                data.len()
            ));
        }
        Ok(Tensor {
            name,
            datatype,
            shape,
            data,
        })
    }

    pub fn from_f32(name: impl Into<String>, shape: Vec<usize>, values: &[f32]) -> Tensor {
        Tensor {
            name: name.into(),
            datatype: DataType::Fp32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    /// The elements as f32, for FP32 tensors.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        (self.datatype == DataType::Fp32).then(|| {
            self.data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// Bytes of one row along the first dimension.
    pub fn row_bytes(&self) -> usize {
        match self.shape.first() {
            Some(&n) if n > 0 => self.data.len() / n,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_both_spellings() {
        for d in DataType::ALL {
            assert_eq!(DataType::parse(d.name()), Some(d));
            assert_eq!(DataType::parse(&d.config_name()), Some(d));
        }
        assert_eq!(DataType::parse("fp32"), Some(DataType::Fp32));
        assert_eq!(DataType::parse("FLOAT"), None);
    }

    #[test]
    fn a_tensor_must_hold_exactly_its_shape() {
        assert!(Tensor::new("x", DataType::Fp32, vec![2, 3], vec![0; 24]).is_ok());
        let e = Tensor::new("x", DataType::Fp32, vec![2, 3], vec![0; 20]).unwrap_err();
        assert!(e.contains("'x'") && e.contains("needs 24"), "{e}");
        assert!(Tensor::new("x", DataType::Fp32, vec![usize::MAX, 2], vec![]).is_err());
        let t = Tensor::from_f32("y", vec![2, 2], &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(t.row_bytes(), 8);
        assert_eq!(t.to_f32().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
    }
}
