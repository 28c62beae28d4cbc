//! What the model file says its tensors are, and whether `config.yaml` agrees: names, element
//! types, dimensions (concrete, symbolic or unknown) and the batch dimension.

use tract_onnx::prelude::*;

use crate::backend::ModelError;
use crate::config::TensorSpec;
use crate::tensor::DataType;

/// A model dimension as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Dim {
    Fixed(i64),
    /// Symbolic (`N`, `batch_size`) or unknown.
    Any(String),
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Any(s) => f.write_str(s),
        }
    }
}

pub(super) fn show(dims: &[Dim]) -> String {
    let v: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

pub(super) fn dim_of(d: &TDim) -> Dim {
    match d.to_i64() {
        Ok(n) => Dim::Fixed(n),
        Err(_) => Dim::Any(d.to_string()),
    }
}

/// A spec from the file alone (config.yaml left inputs/outputs out).
pub(super) fn completed(
    name: &str,
    datatype: DataType,
    file_dims: &[Dim],
    batched: bool,
) -> Result<TensorSpec, ModelError> {
    let rest = if batched {
        file_dims.get(1..).unwrap_or(&[])
    } else {
        file_dims
    };
    if batched && file_dims.is_empty() {
        return Err(ModelError::Load(format!(
            "max_batch_size: '{name}' has no dimensions, so it cannot take a batch; use max_batch_size: 0"
        )));
    }
    Ok(TensorSpec {
        name: name.to_string(),
        datatype,
        dims: rest
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Any(_) => -1,
            })
            .collect(),
    })
}

/// Whether a config.yaml spec agrees with the file; the error names the field.
pub(super) fn agree(
    at: &str,
    spec: &TensorSpec,
    datatype: DataType,
    file_dims: &[Dim],
    batched: bool,
    max_batch: usize,
) -> Result<(), ModelError> {
    if spec.datatype != datatype {
        return Err(ModelError::Load(format!(
            "{at}.datatype: config.yaml says {}, the model's '{}' is {datatype}",
            spec.datatype, spec.name
        )));
    }
    let rest = if batched {
        match file_dims.first() {
            Some(Dim::Fixed(b)) if !(*b == 1 && max_batch == 1) => {
                return Err(ModelError::Load(format!(
                    "max_batch_size: {max_batch}, but the model's '{}' has a fixed batch dimension of {b} {}",
                    spec.name,
                    show(file_dims)
                )));
            }
            Some(_) => &file_dims[1..],
            None => &[][..],
        }
    } else {
        file_dims
    };
    let fits = rest.len() == spec.dims.len()
        && rest.iter().zip(&spec.dims).all(|(f, c)| match f {
            Dim::Fixed(n) => *c == *n || *c == -1,
            Dim::Any(_) => true,
        });
    if !fits {
        let batch = if batched {
            " after the batch dimension"
        } else {
            ""
        };
        return Err(ModelError::Load(format!(
            "{at}.dims: config.yaml says {:?}, the model's '{}' is {}{batch}",
            spec.dims,
            spec.name,
            show(file_dims)
        )));
    }
    Ok(())
}

pub(super) fn from_tract(dt: DatumType) -> Option<DataType> {
    Some(match dt {
        DatumType::Bool => DataType::Bool,
        DatumType::U8 => DataType::Uint8,
        DatumType::U16 => DataType::Uint16,
        DatumType::U32 => DataType::Uint32,
        DatumType::U64 => DataType::Uint64,
        DatumType::I8 => DataType::Int8,
        DatumType::I16 => DataType::Int16,
        DatumType::I32 => DataType::Int32,
        DatumType::I64 => DataType::Int64,
        DatumType::F16 => DataType::Fp16,
        DatumType::F32 => DataType::Fp32,
        DatumType::F64 => DataType::Fp64,
        _ => return None,
    })
}

pub(super) fn to_tract(dt: DataType) -> Option<DatumType> {
    Some(match dt {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp16 => DatumType::F16,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dt: DataType, dims: Vec<i64>) -> TensorSpec {
        TensorSpec {
            name: "x".into(),
            datatype: dt,
            dims,
        }
    }

    #[test]
    fn config_and_file_must_agree() {
        let n = || Dim::Any("N".into());
        let file = [n(), Dim::Fixed(3), Dim::Fixed(224)];
        assert!(
            agree(
                "inputs[0]",
                &spec(DataType::Fp32, vec![3, 224]),
                DataType::Fp32,
                &file,
                true,
                8
            )
            .is_ok()
        );
        assert!(
            agree(
                "inputs[0]",
                &spec(DataType::Fp32, vec![3, -1]),
                DataType::Fp32,
                &file,
                true,
                8
            )
            .is_ok()
        );
        let e = agree(
            "inputs[0]",
            &spec(DataType::Fp32, vec![3, 225]),
            DataType::Fp32,
            &file,
            true,
            8,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "inputs[0].dims: config.yaml says [3, 225], the model's 'x' is [N, 3, 224]"
            ),
            "{e}"
        );
        let e = agree(
            "inputs[0]",
            &spec(DataType::Int64, vec![3, 224]),
            DataType::Fp32,
            &file,
            true,
            8,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("inputs[0].datatype"), "{e}");
        // A batch fixed in the file cannot take max_batch_size rows.
        let fixed = [Dim::Fixed(1), Dim::Fixed(3), Dim::Fixed(224)];
        let e = agree(
            "inputs[0]",
            &spec(DataType::Fp32, vec![3, 224]),
            DataType::Fp32,
            &fixed,
            true,
            8,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("max_batch_size: 8"), "{e}");
        assert!(
            agree(
                "inputs[0]",
                &spec(DataType::Fp32, vec![3, 224]),
                DataType::Fp32,
                &fixed,
                true,
                1
            )
            .is_ok()
        );
        // Without a batch dimension every dim is compared.
        assert!(
            agree(
                "inputs[0]",
                &spec(DataType::Fp32, vec![-1, 3, 224]),
                DataType::Fp32,
                &file,
                false,
                0
            )
            .is_ok()
        );
        let c = completed("x", DataType::Fp32, &file, true).unwrap();
        assert_eq!(c.dims, vec![3, 224]);
        assert!(completed("x", DataType::Fp32, &[], true).is_err());
    }
}
