//! What a model file says its tensors are, and whether `config.yaml` agrees: element types,
//! dimensions (concrete, symbolic or unknown) and the batch dimension. Every backend reads its
//! file its own way, then decides here, so the rules and messages are the same for all.

use crate::backend::ModelError;
use crate::config::{ModelConfig, TensorSpec};
use crate::tensor::DataType;

/// A model dimension as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dim {
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

pub(crate) fn show(dims: &[Dim]) -> String {
    let v: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", v.join(", "))
}

/// A spec from the file alone (config.yaml left inputs/outputs out).
pub(crate) fn completed(
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
pub(crate) fn agree(
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

/// A tensor as the model file declares it.
pub(crate) struct Declared {
    pub name: String,
    pub datatype: DataType,
    pub dims: Vec<Dim>,
}

/// The specs of `list` (`inputs` or `outputs`), in the file's order: config.yaml's own, each
/// checked against the file, or the file's when config.yaml lists none. Every input the file
/// declares must be listed when any is; every tensor config.yaml lists must be in the file.
pub(crate) fn reconcile(
    list: &str,
    declared: &[Declared],
    config: &ModelConfig,
) -> Result<Vec<TensorSpec>, ModelError> {
    let given = if list == "inputs" {
        &config.inputs
    } else {
        &config.outputs
    };
    let batched = config.max_batch_size > 0;
    let mut specs = Vec::with_capacity(declared.len());
    for d in declared {
        let spec = match given.iter().position(|s| s.name == d.name) {
            Some(i) => {
                let s = &given[i];
                agree(
                    &format!("{list}[{i}]"),
                    s,
                    d.datatype,
                    &d.dims,
                    batched,
                    config.max_batch_size,
                )?;
                s.clone()
            }
            None if given.is_empty() || list == "outputs" => {
                completed(&d.name, d.datatype, &d.dims, batched)?
            }
            None => {
                return Err(ModelError::Load(format!(
                    "{list}: the model also takes '{}' {} that config.yaml does not list",
                    d.name,
                    show(&d.dims)
                )));
            }
        };
        specs.push(spec);
    }
    if let Some((i, s)) = given
        .iter()
        .enumerate()
        .find(|(_, s)| !declared.iter().any(|d| d.name == s.name))
    {
        let have: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        return Err(ModelError::Load(format!(
            "{list}[{i}].name: the model has no {} '{}' (it has: {})",
            &list[..list.len() - 1],
            s.name,
            have.join(", ")
        )));
    }
    Ok(specs)
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
