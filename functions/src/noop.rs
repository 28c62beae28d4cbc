//! `kind: noop`: takes its input and makes nothing of it. For measuring what surrounds a
//! function (triggers, the bus, the store, the HTTP front door) without any compute in the way.

use crate::{ExecCtx, FnError, Function, Input, Limits, Output};

/// Params: none (`params: {}`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoopParams {}

pub struct Noop;

impl Function for Noop {
    fn kind(&self) -> &'static str {
        "noop"
    }

    fn limits(&self) -> Limits {
        Limits {
            max_batch: 1024,
            gpu_capable: false,
            // An object is opened, never read: the path is measured, not the store's reads.
            streams_input: true,
            max_decode_bytes: 0,
        }
    }

    fn call(&self, batch: &[Input], _ctx: &ExecCtx) -> Vec<Result<Output, FnError>> {
        batch
            .iter()
            .map(|input| {
                Ok(Output::new(
                    vec![],
                    serde_json::json!({ "bytes": input.bytes.len() }),
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_empty_output_per_input() {
        let batch = vec![Input::new(vec![1u8, 2, 3]), Input::new(Vec::<u8>::new())];
        let out = Noop.call(&batch, &ExecCtx::unbounded(2));
        assert_eq!(out.len(), 2);
        let first = out[0].as_ref().unwrap();
        assert!(first.artifacts.is_empty());
        assert_eq!(first.summary["bytes"], 3);
    }
}
