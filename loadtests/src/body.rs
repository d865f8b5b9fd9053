//! Request bodies: v2 inference bodies from a model's reference rows, OpenAI-style
//! embeddings bodies from a built-in list of texts, and how many rows a body carries.
//!
//! The load modes send fixed bodies over and over, read from files once, so the client
//! spends no CPU on JSON encoding while it shares the machine with the server. (Images are
//! sent as the files themselves, with `--content-type`; they need no body mode.)

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

/// The same body in the v2 binary tensor extension: a JSON header whose input says
/// `binary_data_size`, then the rows as little-endian FP32. Returns the bytes and the
/// header's length (the `Inference-Header-Content-Length` value).
pub fn build_binary_body(reference: &Reference, rows: usize) -> Result<(Vec<u8>, usize)> {
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    let data: Vec<f32> = reference
        .cycled_rows(rows)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{
            "name": reference.input_name,
            "shape": [rows, reference.features()],
            "datatype": "FP32",
            "parameters": {"binary_data_size": data.len() * 4},
        }]
    }))?;
    let mut body = header.clone();
    body.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    Ok((body, header.len()))
}

/// Short sentences (a dozen tokens or so): the common case of an embeddings service.
pub const SHORT_TEXTS: [&str; 8] = [
    "The parcel arrived two days late.",
    "Where is the nearest train station?",
    "Reset the router and try again.",
    "This jacket keeps me warm in winter.",
    "Our meeting moved to Thursday morning.",
    "The soup needs a little more salt.",
    "Please send the invoice by email.",
    "The library closes at nine tonight.",
];

/// Texts of widely varied length, from a few tokens to about a hundred and forty: in a batch
/// padded to its longest member, the short ones would pay for the long ones, which is
/// what length bucketing avoids. Ordered so that consecutive entries differ in length.
pub const VARIED_TEXTS: [&str; 8] = [
    "Thanks!",
    "The committee postponed its decision on the new bridge until the traffic study \
     is finished, which is expected some time next spring.",
    "Is it raining?",
    "When the first settlers reached the valley they found the river far wider than \
     the maps suggested. They spent the summer building rafts from the pines on the \
     eastern slope, and by autumn a small ferry carried grain, tools and the occasional \
     traveller across the water. The ferry ran for almost forty years, until a stone \
     bridge was finished a few miles upstream and the crossing fell quiet.",
    "Battery low, charging now.",
    "A good onboarding document answers the questions a new engineer will have in \
     their first week: how to build the project, where the tests live, who reviews \
     which parts of the code, and how a change travels from a laptop to production.",
    "She smiled.",
    "Modern compilers transform source code through many intermediate \
     representations. Parsing produces a syntax tree; name resolution and type \
     checking annotate it; lowering turns it into a simpler form where control flow is \
     explicit. Optimisation passes then remove redundant computations, inline small \
     functions, hoist invariant work out of loops and allocate registers, before the \
     back end finally selects machine instructions and lays out the executable. Each \
     stage is simpler to reason about than the whole, which is why the design has \
     lasted for decades, and why so many languages can share one optimiser and one \
     code generator while differing completely in their front ends.",
];

/// How the texts of an embeddings body are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextLength {
    /// From `SHORT_TEXTS`.
    Short,
    /// From `VARIED_TEXTS`.
    Mixed,
}

/// An OpenAI-style `/v1/embeddings` body: `texts` texts of the chosen kind, starting at
/// entry `offset` of its list and cycling (so bodies with different offsets differ).
pub fn build_embeddings_body(
    model: &str,
    texts: usize,
    length: TextLength,
    offset: usize,
) -> Result<Value> {
    if texts == 0 {
        bail!("--texts must be at least 1");
    }
    let list: &[&str] = match length {
        TextLength::Short => &SHORT_TEXTS,
        TextLength::Mixed => &VARIED_TEXTS,
    };
    let input: Vec<&str> = (0..texts)
        .map(|i| list[(offset + i) % list.len()])
        .collect();
    Ok(json!({ "input": input, "model": model }))
}

/// Rows per request of a JSON body: `shape[0]` of a v2 body's first input, or the number
/// of texts of an embeddings body (`input`: a string or an array of them).
///
/// The throughput in rows/s is what batching changes, so the load modes need it; reading it
/// from the body avoids a second, possibly inconsistent, command-line value.
pub fn rows_in_body(body: &[u8]) -> Result<usize> {
    let v: Value = serde_json::from_slice(body).context("request body is not JSON")?;
    if let Some(input) = v.get("input") {
        return match input {
            Value::String(_) => Ok(1),
            Value::Array(items) if !items.is_empty() => Ok(items.len()),
            _ => bail!("embeddings body: `input` is neither a text nor a list of texts"),
        };
    }
    let rows = v
        .pointer("/inputs/0/shape/0")
        .and_then(Value::as_u64)
        .context("request body has no inputs[0].shape[0] nor input; pass --rows-per-request")?;
    usize::try_from(rows).context("shape[0] too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_body_is_a_json_header_then_le_fp32_rows() {
        let r = Reference {
            input_name: "input".into(),
            input: vec![vec![1.0, 2.0], vec![3.5, -4.0]],
            output: vec![],
        };
        let (body, n) = build_binary_body(&r, 3).unwrap();
        let header: Value = serde_json::from_slice(&body[..n]).unwrap();
        assert_eq!(header["inputs"][0]["shape"], json!([3, 2]));
        assert_eq!(header["inputs"][0]["parameters"]["binary_data_size"], 24);
        assert_eq!(rows_in_body(&body[..n]).unwrap(), 3);
        let floats: Vec<f32> = body[n..]
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [1.0, 2.0, 3.5, -4.0, 1.0, 2.0]);
        assert!(build_binary_body(&r, 0).is_err());
    }

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
    fn embeddings_bodies_cycle_their_list() {
        let b = build_embeddings_body("minilm", 3, TextLength::Mixed, 7).unwrap();
        assert_eq!(b["model"], "minilm");
        assert_eq!(
            b["input"],
            json!([VARIED_TEXTS[7], VARIED_TEXTS[0], VARIED_TEXTS[1]])
        );
        let body = serde_json::to_vec(&b).unwrap();
        assert_eq!(rows_in_body(&body).unwrap(), 3);
        assert_eq!(
            rows_in_body(br#"{"input": "one", "model": "m"}"#).unwrap(),
            1
        );
        assert!(build_embeddings_body("m", 0, TextLength::Short, 0).is_err());
    }

    #[test]
    fn varied_texts_really_vary() {
        let words: Vec<usize> = VARIED_TEXTS
            .iter()
            .map(|t| t.split_whitespace().count())
            .collect();
        assert!(*words.iter().min().unwrap() <= 2, "{words:?}");
        assert!(*words.iter().max().unwrap() >= 100, "{words:?}");
        // Neighbours differ (a closed loop cycling them mixes lengths in every batch).
        assert!(words.windows(2).all(|w| w[0] != w[1]));
    }

    #[test]
    fn body_without_shape_is_rejected() {
        assert!(rows_in_body(br#"{"inputs":[{"name":"input"}]}"#).is_err());
        assert!(rows_in_body(b"not json").is_err());
    }
}
