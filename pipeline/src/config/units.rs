//! Human units in the config file: durations (`5ms`, `90s`) and sizes (`50MB`, `2MiB`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

/// A duration such as `5ms`, `3s`, `1m 30s`. A bare number is refused: its unit would be a guess.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Text(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "expected a duration such as 5ms, 3s or 1m, got {s:?} ({e})"
            ))
        }),
        Raw::Number(n) => Err(serde::de::Error::custom(format!(
            "expected a duration with its unit, such as {n}ms or {n}s, got the bare number {n}"
        ))),
    }
}

/// A size such as `50MB`, `512KiB` or a number of bytes.
pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => s
            .trim()
            .parse::<bytesize::ByteSize>()
            .map(|b| b.as_u64())
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "expected a size such as 50MB, 512KiB or 1000000, got {s:?}"
                ))
            }),
    }
}

/// An optional size (see `bytes`).
pub fn optional_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    bytes(d).map(Some)
}

/// A model memory budget: one size for every device, or sizes by device name.
pub fn budget<'de, D: Deserializer<'de>>(d: D) -> Result<weir_models::budget::Budget, D::Error> {
    use serde::de::Error;
    use weir_models::budget::Budget;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::Mapping(m) => {
            let mut limits = std::collections::BTreeMap::new();
            for (k, v) in m {
                let name = k
                    .as_str()
                    .ok_or_else(|| D::Error::custom("device names are strings: cpu, cuda, cuda:N"))?
                    .to_string();
                let size = bytes(v).map_err(|e| D::Error::custom(format!("{name}: {e}")))?;
                limits.insert(name, size);
            }
            Budget::per_device(limits).map_err(D::Error::custom)
        }
        one => bytes(one).map(Budget::every).map_err(D::Error::custom),
    }
}

/// One string or a list of them (`suffix: .jpg` or `suffix: [.jpg, .png]`).
pub fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}
