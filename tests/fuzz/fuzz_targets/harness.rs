//! What each fuzz target does with one input, and the properties it checks. Shared by
//! the cargo-fuzz targets in this folder and by `tests/fuzz_regressions.rs` (which
//! includes this file with `#[path]`), so a crash input replays through exactly the
//! same code under a plain `cargo test`.
//!
//! Every function must return normally for any input: an `Err` from Convoy is a fine
//! answer, a panic or an abort is a finding. Beyond "no panic", each checks what the
//! server relies on downstream (a decoded tensor's length matches its shape; a request
//! error is a 4xx, never a 500; ...), because a silent wrong answer is worse than a crash.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use convoy::batching::batch::{split, stack};
use convoy::error::{Error, ErrorKind};
use convoy::http::decode::{decode_inputs, schedule};
use convoy::http::dto::InferRequest;
use convoy::pipeline::image::{preprocess, ImageParams};
use convoy::pipeline::text::TextStage;
use convoy::pipeline::PipelineError;
use convoy::repository::config::BatchingConfig;
use convoy::service::validate;
use convoy::service::Input;
use convoy::tensor::{element_count, DataType, Payload, ServedSpec, Tensor, TensorSpec};

fn spec(name: &str, datatype: DataType, dims: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        datatype,
        dims: dims.to_vec(),
    }
}

/// The models a request is decoded against: the shipped MLP, and one input of every
/// served datatype with fixed, dynamic, multi-dimensional and scalar-row dims.
pub fn model_specs() -> Vec<(&'static str, Vec<TensorSpec>, usize)> {
    vec![
        ("mlp", vec![spec("input", DataType::F32, &[10])], 64),
        (
            "all_types",
            vec![
                spec("input", DataType::F32, &[-1]),
                spec("mask", DataType::I64, &[-1]),
                spec("ids", DataType::I32, &[2, -1]),
                spec("flag", DataType::Bool, &[]),
                spec("u8", DataType::U8, &[3]),
                spec("i8", DataType::I8, &[-1]),
                spec("f64", DataType::F64, &[2]),
            ],
            8,
        ),
    ]
}

/// A model with priorities and a default deadline, for `schedule`.
fn scheduled_model() -> BatchingConfig {
    BatchingConfig {
        max_batch_size: 8,
        dynamic: true,
        priority_levels: 3,
        default_priority: 2,
        default_timeout: Some(Duration::from_secs(1)),
        ..BatchingConfig::default()
    }
}

/// The decoder's answer checked against a model, as the core checks it.
pub fn decode_for(
    model: &str,
    inputs: Vec<convoy::http::dto::InferInputRequest>,
    specs: &[TensorSpec],
    max_batch_size: usize,
    binary: &[u8],
) -> Result<(Vec<Input>, usize), Error> {
    let served: Vec<ServedSpec> = specs.iter().map(ServedSpec::from).collect();
    let decoded = decode_inputs(inputs, binary)?;
    validate::inputs(model, decoded, &served, Some(max_batch_size))
}

/// What must hold of any decoder answer.
fn check_decoded(
    model: &str,
    result: Result<(Vec<Input>, usize), Error>,
    specs: &[TensorSpec],
    max_batch_size: usize,
) {
    let (inputs, rows) = match result {
        Err(e) => {
            // A malformed or mismatched request is the client's fault: 400 or 422.
            assert!(
                matches!(e.kind, ErrorKind::BadRequest | ErrorKind::Unprocessable),
                "{model}: a request error must be 400/422, got {:?} ({e})",
                e.kind
            );
            return;
        }
        Ok(v) => v,
    };
    assert_eq!(inputs.len(), specs.len(), "{model}: one tensor per input");
    assert!(
        (1..=max_batch_size).contains(&rows),
        "{model}: {rows} rows accepted for max_batch_size {max_batch_size}"
    );
    let tensors: Vec<Tensor> = inputs
        .into_iter()
        .map(|i| match i.payload {
            Payload::Numeric(data) => Tensor {
                shape: i.shape,
                data,
            },
            Payload::Bytes(_) => panic!("{model}: BYTES accepted for a numeric input"),
        })
        .collect();
    for (t, s) in tensors.iter().zip(specs) {
        assert_eq!(
            t.data.datatype(),
            s.datatype,
            "{model}: {} datatype",
            s.name
        );
        assert_eq!(t.shape.len(), s.dims.len() + 1, "{model}: {} rank", s.name);
        assert_eq!(t.shape[0], rows, "{model}: {} rows", s.name);
        for (&want, &got) in s.dims.iter().zip(&t.shape[1..]) {
            assert!(
                got > 0 && (want == -1 || want as usize == got),
                "{model}: {} dims {:?}",
                s.name,
                t.shape
            );
        }
        assert_eq!(
            element_count(&t.shape),
            Some(t.data.len()),
            "{model}: {} holds {} values for shape {:?}",
            s.name,
            t.data.len(),
            t.shape
        );
    }
    // What the batcher does next: two such requests stack and split back unchanged.
    let refs = [tensors.as_slice(), tensors.as_slice()];
    let batch = stack(&refs, false).expect("two identical requests stack");
    for b in &batch {
        assert_eq!(b.shape[0], 2 * rows);
    }
    let back = split(batch, &[rows, rows]).expect("a stacked batch splits");
    assert_eq!(back[0], tensors);
    assert_eq!(back[1], tensors);
}

/// A v2 infer body: the JSON part as the server parses it, then `binary` (the bytes
/// after `Inference-Header-Content-Length`), decoded for every model.
pub fn v2_body(json: &[u8], binary: &[u8]) {
    for (model, specs, max) in model_specs() {
        // Parsed per model: `InferInputRequest` is not `Clone`, and the parse is part of
        // what is fuzzed.
        let Ok(request) = serde_json::from_slice::<InferRequest>(json) else {
            return;
        };
        if model == "mlp" {
            let arrived = Instant::now();
            if let Ok(s) = schedule(request.parameters.as_ref(), None, arrived, "fuzz".into()) {
                assert!(s.timeout.is_none_or(|t| !t.is_zero()), "zero timeout");
                if let Ok((deadline, priority)) =
                    convoy::service::schedule::resolve(&s, &scheduled_model())
                {
                    assert!((1..=3).contains(&priority), "priority {priority}");
                    assert!(deadline.is_none_or(|d| d > arrived), "deadline in the past");
                }
            }
        }
        let result = decode_for(model, request.inputs, &specs, max, binary);
        check_decoded(model, result, &specs, max);
    }
}

/// Target `v2_json`: arbitrary bytes as a JSON-only infer body.
pub fn v2_json(data: &[u8]) {
    v2_body(data, &[]);
}

/// The pre-processing of the shipped image classifier (EfficientNet-Lite0: short side
/// 256, centre crop 224), with the limits of a small deployment.
pub fn image_params() -> Vec<ImageParams> {
    vec![
        ImageParams {
            resize_short: Some(256),
            resize: None,
            crop: Some(224),
            channels: 3,
            mean: 127.0,
            scale: 128.0,
            max_bytes: 1 << 20,
            max_pixels: 1 << 20,
        },
        ImageParams {
            resize_short: None,
            resize: Some([7, 5]),
            crop: None,
            channels: 1,
            mean: 0.0,
            scale: 255.0,
            max_bytes: 1 << 20,
            max_pixels: 1 << 20,
        },
    ]
}

/// Target `image`: arbitrary bytes as an uploaded image.
pub fn image(data: &[u8]) {
    for p in image_params() {
        match preprocess(data, &p, "image") {
            Ok(v) => {
                assert_eq!(v.len(), p.output_len(), "values per image");
                assert!(v.iter().all(|x| x.is_finite()), "non-finite pixel value");
            }
            Err(PipelineError::Input(m) | PipelineError::TooLarge(m)) => {
                assert!(m.starts_with("image: "), "error must name the field: {m}");
            }
        }
    }
}

/// Tokens the fuzzed text stage allows (small, so truncation is exercised constantly).
pub const MAX_TOKENS: usize = 16;

pub fn text_stage(tokenizer_json: &Path) -> TextStage {
    TextStage::load(tokenizer_json, MAX_TOKENS).expect("the fixture tokenizer loads")
}

/// Target `tokenizer`: arbitrary bytes as texts, lossy UTF-8 (one text) and, when the
/// bytes are valid UTF-8, strict (one text per line, as a list of inputs), each
/// tokenized exact and truncating.
pub fn tokenizer(stage: &TextStage, data: &[u8]) {
    let lossy = vec![String::from_utf8_lossy(data).into_owned()];
    encode_both(stage, &lossy);
    if let Ok(s) = std::str::from_utf8(data) {
        let lines: Vec<String> = s.split('\n').take(8).map(str::to_owned).collect();
        encode_both(stage, &lines);
    }
}

fn encode_both(stage: &TextStage, texts: &[String]) {
    let exact = stage.encode(texts, false, "input");
    let truncated = stage.encode(texts, true, "input");
    if let Ok(out) = &truncated {
        assert_eq!(out.len(), texts.len(), "one encoding per text");
        for e in out {
            let n = e.ids.len();
            assert!((1..=MAX_TOKENS).contains(&n), "{n} tokens after truncation");
            assert_eq!(e.mask.len(), n);
            assert_eq!(e.type_ids.len(), n);
            assert!(
                e.mask.iter().all(|&m| m == 1),
                "unpadded: every mask bit set"
            );
        }
    }
    match (&exact, &truncated) {
        // Texts that fit come out the same either way.
        (Ok(a), Ok(b)) => assert_eq!(a, b, "truncation changed a text that fits"),
        (Ok(_), Err(e)) => panic!("served exact, refused truncated: {e}"),
        // Truncating serves what exact refuses only for length (said by name).
        (Err(e), Ok(_)) => assert!(
            e.to_string().contains("exceeds"),
            "refused exact, served truncated, not for length: {e}"
        ),
        // Both refuse (an empty text, one over max_text_bytes, ...): truncating never for
        // its length in tokens.
        (Err(_), Err(e)) => assert!(
            matches!(e, PipelineError::TooLarge(_)) || !e.to_string().contains("exceeds"),
            "refused for length after truncation: {e}"
        ),
    }
}
