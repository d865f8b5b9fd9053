//! Request bodies: building v2 inference bodies from a model's reference rows, and reading
//! back how many rows a body carries.
//!
//! The load modes send one fixed body over and over, read from a file once, so the client
//! spends no CPU on JSON encoding while it shares the machine with the server.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};

/// The parts of a model's `reference.json` the load tests use.
#[derive(Debug, Deserialize)]
pub struct Reference {
    /// Name of the model's input tensor (defaults to `input`).
    #[serde(default = "default_input_name")]
    pub input_name: String,
    /// Reference rows, one feature vector each. Kept as f64 so the values written into
    /// bodies are exactly the ones in the file.
    pub input: Vec<Vec<f64>>,
    /// Expected model outputs for `input`, row by row (optional: only the ceiling checks it).
    #[serde(default)]
    pub output: Vec<Vec<f64>>,
}

fn default_input_name() -> String {
    "input".to_string()
}

impl Reference {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading reference file {}", path.display()))?;
        let reference: Reference = serde_json::from_str(&text)
            .with_context(|| format!("parsing reference file {}", path.display()))?;
        let Some(first) = reference.input.first() else {
            bail!("{}: no input rows", path.display());
        };
        if first.is_empty() || reference.input.iter().any(|r| r.len() != first.len()) {
            bail!(
                "{}: input rows must be non-empty and equally long",
                path.display()
            );
        }
        Ok(reference)
    }

    pub fn features(&self) -> usize {
        self.input[0].len()
    }

    /// `rows` rows taken from the reference cyclically, flattened row-major.
    pub fn cycled_rows(&self, rows: usize) -> Vec<f64> {
        self.input
            .iter()
            .cycle()
            .take(rows)
            .flat_map(|r| r.iter().copied())
            .collect()
    }
}

/// A KServe v2 request body with `rows` FP32 rows cycled from the reference.
pub fn build_body(reference: &Reference, rows: usize) -> Result<Value> {
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    Ok(json!({
        "inputs": [{
            "name": reference.input_name,
            "shape": [rows, reference.features()],
            "datatype": "FP32",
            "data": reference.cycled_rows(rows),
        }]
    }))
}

/// Rows per request of a v2 body: `shape[0]` of its first input.
///
/// The throughput in rows/s is what batching changes, so the load modes need it; reading it
/// from the body avoids a second, possibly inconsistent, command-line value.
pub fn rows_in_body(body: &[u8]) -> Result<usize> {
    let v: Value = serde_json::from_slice(body).context("request body is not JSON")?;
    let rows = v
        .pointer("/inputs/0/shape/0")
        .and_then(Value::as_u64)
        .context("request body has no inputs[0].shape[0]; pass --rows-per-request")?;
    usize::try_from(rows).context("shape[0] too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference() -> Reference {
        serde_json::from_value(json!({
            "input": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
            "output": [[0.5], [0.6], [0.7]]
        }))
        .unwrap()
    }

    #[test]
    fn body_cycles_reference_rows() {
        let body = build_body(&reference(), 5).unwrap();
        assert_eq!(body["inputs"][0]["name"], "input");
        assert_eq!(body["inputs"][0]["shape"], json!([5, 2]));
        assert_eq!(body["inputs"][0]["datatype"], "FP32");
        assert_eq!(
            body["inputs"][0]["data"],
            json!([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0, 3.0, 4.0])
        );
    }

    #[test]
    fn zero_rows_is_an_error() {
        assert!(build_body(&reference(), 0).is_err());
    }

    #[test]
    fn rows_are_read_back_from_a_body() {
        let body = serde_json::to_vec(&build_body(&reference(), 64).unwrap()).unwrap();
        assert_eq!(rows_in_body(&body).unwrap(), 64);
    }

    #[test]
    fn body_without_shape_is_rejected() {
        assert!(rows_in_body(br#"{"inputs":[{"name":"input"}]}"#).is_err());
        assert!(rows_in_body(b"not json").is_err());
    }
}
