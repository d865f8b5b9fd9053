//! Task endpoints on top of the pipelines: OpenAI-compatible `/v1/embeddings`,
//! `/v1/models/{m}/classify`, and v2 infer with a BYTES input on a pipeline model.
//! Pre- and post-processing run on the CPU pool; requests larger than a batch are cut
//! into batch-sized entries (text sorted by length first, so each entry pads little).

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use base64::Engine;
use serde_json::Value;

use super::decode::{schedule, TIMEOUT_HEADER};
use super::run::submit_and_wait;
use super::AppState;
use crate::batching::{Entry, Reply, ShapeKey};
use crate::error::ApiError;
use crate::pipeline::image::preprocess;
use crate::pipeline::post::{mean_pool_normalized, softmax, top_k};
use crate::pipeline::text::Encoded;
use crate::pipeline::{Pipeline, PipelineError};
use crate::repository::Model;
use crate::tensor::{Tensor, TensorData};

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> ApiError {
        match e {
            PipelineError::Input(m) => ApiError::Unprocessable(m),
            PipelineError::TooLarge(m) => ApiError::PayloadTooLarge(m),
        }
    }
}

/// Where a task request's time went, for the `x-convoy-*-us` headers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Timing {
    pub pre_us: u64,
    pub queue_us: u64,
    pub infer_us: u64,
    pub post_us: u64,
}

impl Timing {
    fn add_reply(&mut self, r: &Reply) {
        self.queue_us = self.queue_us.max(r.queue.as_micros() as u64);
        self.infer_us = self.infer_us.max(r.compute.as_micros() as u64);
    }

    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            ("x-convoy-pre-us", self.pre_us.to_string()),
            ("x-convoy-queue-us", self.queue_us.to_string()),
            ("x-convoy-infer-us", self.infer_us.to_string()),
            ("x-convoy-post-us", self.post_us.to_string()),
        ]
    }
}

/// How a task request is scheduled: deadline/priority from the timeout header and the
/// model's defaults.
pub struct Schedule {
    deadline: Option<Instant>,
    priority: u32,
    request_id: Arc<str>,
}

pub fn task_schedule(
    m: &Model,
    params: Option<&serde_json::Map<String, Value>>,
    headers: &HeaderMap,
    request_id: Arc<str>,
    arrived: Instant,
) -> Result<Schedule, ApiError> {
    let header_ms = headers.get(TIMEOUT_HEADER).and_then(|v| v.to_str().ok());
    let (deadline, priority) = schedule(params, header_ms, &m.config.batching, arrived)?;
    Ok(Schedule {
        deadline,
        priority,
        request_id,
    })
}

/// Runs `entries` (each with its row count) concurrently; replies in the same order.
async fn run_all(
    m: &Arc<Model>,
    entries: Vec<(Vec<Tensor>, usize, ShapeKey)>,
    s: &Schedule,
) -> Result<Vec<Reply>, ApiError> {
    let waits = entries.into_iter().map(|(tensors, rows, key)| {
        let (entry, rx) = Entry::new(tensors, rows, key);
        let entry = entry
            .with_request_id(s.request_id.clone())
            .with_schedule(s.deadline, s.priority);
        submit_and_wait(m, entry, rx, s.deadline)
    });
    // All entries are queued at the first poll, so they can share batches.
    futures::future::join_all(waits).await.into_iter().collect()
}

/// Smallest length bucket holding `n` tokens: 16, 32, 64, ... (text batches form per
/// bucket, so short texts do not pay for long ones).
pub fn length_bucket(n: usize) -> usize {
    n.max(16).next_power_of_two()
}

/// Embeds `texts` with model `m`: one unit vector per text, and the token count.
pub async fn embed(
    st: &AppState,
    m: &Arc<Model>,
    texts: Vec<String>,
    truncate: Option<bool>,
    field: &'static str,
    sched: &Schedule,
    timing: &mut Timing,
) -> Result<(Vec<Vec<f32>>, usize), ApiError> {
    let Some(Pipeline::Embed {
        truncate_default, ..
    }) = &m.pipeline
    else {
        return Err(ApiError::Unprocessable(format!(
            "model {:?} is not a text embedding model",
            m.config.name
        )));
    };
    if texts.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "{field}: expected at least one text, got an empty list"
        )));
    }
    let truncate = truncate.unwrap_or(*truncate_default);
    let t0 = Instant::now();
    let model = m.clone();
    let encoded: Vec<Encoded> = st
        .pool
        .run(move || match &model.pipeline {
            Some(Pipeline::Embed { text, .. }) => text.encode(&texts, truncate, field),
            _ => unreachable!("checked above"),
        })
        .await
        .map_err(|_| ApiError::Internal)??;
    let Some(Pipeline::Embed {
        ids,
        mask,
        type_ids,
        output,
        dim,
        bucketing,
        ..
    }) = &m.pipeline
    else {
        unreachable!("checked above")
    };
    let tokens: usize = encoded.iter().map(|e| e.ids.len()).sum();
    // Sort by length, cut into batch-sized entries, each padded to its own longest.
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| encoded[i].ids.len());
    let max = m.config.batching.max_batch_size;
    let chunks: Vec<Vec<usize>> = order.chunks(max).map(|c| c.to_vec()).collect();
    let n_inputs = m.config.inputs.len();
    let entries = chunks
        .iter()
        .map(|chunk| {
            let len = chunk
                .iter()
                .map(|&i| encoded[i].ids.len())
                .max()
                .unwrap_or(1);
            let pad = |f: &dyn Fn(&Encoded) -> &Vec<i64>| -> Tensor {
                let mut v = Vec::with_capacity(chunk.len() * len);
                for &i in chunk {
                    let src = f(&encoded[i]);
                    v.extend_from_slice(src);
                    v.resize(v.len() + len - src.len(), 0);
                }
                Tensor {
                    shape: vec![chunk.len(), len],
                    data: TensorData::I64(v),
                }
            };
            let mut tensors: Vec<Option<Tensor>> = (0..n_inputs).map(|_| None).collect();
            tensors[*ids] = Some(pad(&|e| &e.ids));
            tensors[*mask] = Some(pad(&|e| &e.mask));
            if let Some(t) = type_ids {
                tensors[*t] = Some(pad(&|e| &e.type_ids));
            }
            let tensors = tensors
                .into_iter()
                .map(|t| t.expect("every input fed"))
                .collect();
            let key: ShapeKey = if *bucketing {
                vec![length_bucket(len)].into_boxed_slice()
            } else {
                Box::new([])
            };
            (tensors, chunk.len(), key)
        })
        .collect();
    timing.pre_us = t0.elapsed().as_micros() as u64;
    m.batcher
        .metrics()
        .preprocess
        .record(t0.elapsed().as_secs_f64());
    let replies = run_all(m, entries, sched).await?;
    for r in &replies {
        timing.add_reply(r);
    }
    let t1 = Instant::now();
    let (output, dim) = (*output, *dim);
    let vectors = st
        .pool
        .run(move || {
            let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encoded.len()];
            for (chunk, reply) in chunks.iter().zip(&replies) {
                let hidden = &reply.outputs[output];
                let TensorData::F32(h) = &hidden.data else {
                    return Err(ApiError::Internal);
                };
                let per_row = hidden.shape.iter().skip(1).product::<usize>();
                for (j, &i) in chunk.iter().enumerate() {
                    let row = h
                        .get(j * per_row..(j + 1) * per_row)
                        .ok_or(ApiError::Internal)?;
                    vectors[i] = mean_pool_normalized(row, dim, &encoded[i].mask);
                }
            }
            Ok(vectors)
        })
        .await
        .map_err(|_| ApiError::Internal)??;
    timing.post_us = t1.elapsed().as_micros() as u64;
    m.batcher
        .metrics()
        .postprocess
        .record(t1.elapsed().as_secs_f64());
    Ok((vectors, tokens))
}

/// One class of a classification.
#[derive(Debug, serde::Serialize)]
pub struct Prediction {
    pub index: usize,
    pub label: String,
    pub score: f32,
}

/// Classifies encoded images with model `m`: per image, its top-k classes and the full
/// probability vector.
pub async fn classify(
    st: &AppState,
    m: &Arc<Model>,
    images: Vec<bytes::Bytes>,
    k: Option<usize>,
    field: &'static str,
    sched: &Schedule,
    timing: &mut Timing,
) -> Result<Vec<(Vec<Prediction>, Vec<f32>)>, ApiError> {
    let Some(Pipeline::Classify { .. }) = &m.pipeline else {
        return Err(ApiError::Unprocessable(format!(
            "model {:?} is not an image classifier",
            m.config.name
        )));
    };
    if images.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "{field}: expected at least one image, got none"
        )));
    }
    let t0 = Instant::now();
    let model = m.clone();
    let pixels: Vec<Vec<f32>> = st
        .pool
        .run(move || {
            let Some(Pipeline::Classify { image, .. }) = &model.pipeline else {
                unreachable!("checked above")
            };
            images
                .iter()
                .enumerate()
                .map(|(i, b)| preprocess(b, image, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| ApiError::Internal)??;
    let dims: Vec<usize> = m.config.inputs[0]
        .dims
        .iter()
        .map(|&d| d.max(1) as usize)
        .collect();
    let max = m.config.batching.max_batch_size;
    let entries = pixels
        .chunks(max)
        .map(|chunk| {
            let mut shape = vec![chunk.len()];
            shape.extend_from_slice(&dims);
            let data: Vec<f32> = chunk.iter().flatten().copied().collect();
            let key: ShapeKey = dims.clone().into_boxed_slice();
            (
                vec![Tensor {
                    shape,
                    data: TensorData::F32(data),
                }],
                chunk.len(),
                key,
            )
        })
        .collect();
    timing.pre_us = t0.elapsed().as_micros() as u64;
    m.batcher
        .metrics()
        .preprocess
        .record(t0.elapsed().as_secs_f64());
    let replies = run_all(m, entries, sched).await?;
    for r in &replies {
        timing.add_reply(r);
    }
    let t1 = Instant::now();
    let model = m.clone();
    let out = st
        .pool
        .run(move || {
            let Some(Pipeline::Classify {
                output,
                labels,
                softmax: apply,
                top_k: default_k,
                ..
            }) = &model.pipeline
            else {
                unreachable!("checked above")
            };
            let k = k.unwrap_or(*default_k).clamp(1, labels.len());
            let mut out = Vec::new();
            for reply in &replies {
                let scores = &reply.outputs[*output];
                let TensorData::F32(s) = &scores.data else {
                    return Err(ApiError::Internal);
                };
                for row in s.chunks(labels.len()) {
                    let probs = if *apply { softmax(row) } else { row.to_vec() };
                    let top = top_k(&probs, k)
                        .into_iter()
                        .map(|(index, score)| Prediction {
                            index,
                            label: labels[index].clone(),
                            score,
                        })
                        .collect();
                    out.push((top, probs));
                }
            }
            Ok(out)
        })
        .await
        .map_err(|_| ApiError::Internal)??;
    timing.post_us = t1.elapsed().as_micros() as u64;
    m.batcher
        .metrics()
        .postprocess
        .record(t1.elapsed().as_secs_f64());
    Ok(out)
}

/// Decodes a base64 image field.
pub fn decode_base64(field: &str, s: &str) -> Result<bytes::Bytes, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map(bytes::Bytes::from)
        .map_err(|e| {
            ApiError::Unprocessable(format!("{field}: expected base64-encoded image bytes: {e}"))
        })
}

/// Little-endian f32 bytes in base64 (OpenAI's `encoding_format: "base64"`).
pub fn f32_base64(v: &[f32]) -> Value {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Splits Triton's binary BYTES encoding: each element is a 4-byte little-endian length
/// followed by that many bytes.
pub fn split_bytes_elements(field: &str, mut raw: &[u8]) -> Result<Vec<bytes::Bytes>, ApiError> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let bad =
            || ApiError::BadRequest(format!("{field}: BYTES element {} is cut short", out.len()));
        let len_bytes: [u8; 4] = raw.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes");
        let len = u32::from_le_bytes(len_bytes) as usize;
        let body = raw.get(4..4 + len).ok_or_else(bad)?;
        out.push(bytes::Bytes::copy_from_slice(body));
        raw = &raw[4 + len..];
    }
    Ok(out)
}

/// v2 infer on a pipeline model: one BYTES input of N elements (texts; images as
/// base64 strings in JSON or raw bytes with the binary extension) to one FP32 output
/// [N, width] (embeddings, or class probabilities).
pub async fn v2_infer(
    st: &AppState,
    m: &Arc<Model>,
    request: super::dto::InferRequest,
    binary: &[u8],
    sched: &Schedule,
) -> Result<axum::response::Response, ApiError> {
    let Some(pipeline) = &m.pipeline else {
        return Err(ApiError::Internal);
    };
    let sig = pipeline.signature();
    let name = &m.config.name;
    if let Pipeline::Tabular { params, .. } = pipeline {
        return v2_tabular(m, params, request, binary, sched).await;
    }
    let [input] = <[_; 1]>::try_from(request.inputs).map_err(|inputs: Vec<_>| {
        ApiError::Unprocessable(format!(
            "inputs: model {name:?} takes exactly one BYTES input {:?}, got {}",
            sig.input,
            inputs.len()
        ))
    })?;
    if input.name != sig.input || input.datatype != "BYTES" {
        return Err(ApiError::Unprocessable(format!(
            "inputs[0]: model {name:?} takes a BYTES input named {:?}, got {} {:?}",
            sig.input, input.datatype, input.name
        )));
    }
    let n = match input.shape.as_slice() {
        [n] | [n, 1] if *n >= 1 => *n as usize,
        other => {
            return Err(ApiError::Unprocessable(format!(
                "inputs[0].shape: expected [N] with N ≥ 1, got {other:?}"
            )))
        }
    };
    let binary_size = input
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_size"))
        .and_then(Value::as_u64);
    let elements: Vec<bytes::Bytes> = match (binary_size, &input.data) {
        (Some(size), _) => {
            let raw = binary.get(..size as usize).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "inputs[0].parameters.binary_data_size: {size} bytes, the body carries {}",
                    binary.len()
                ))
            })?;
            split_bytes_elements("inputs[0]", raw)?
        }
        (None, Some(data)) => {
            let mut flat = Vec::new();
            let mut stack = vec![data];
            while let Some(v) = stack.pop() {
                match v {
                    Value::Array(items) => stack.extend(items.iter().rev()),
                    Value::String(s) => flat.push(s.as_str()),
                    other => {
                        return Err(ApiError::Unprocessable(format!(
                            "inputs[0].data: expected strings for BYTES, got {other}"
                        )))
                    }
                }
            }
            match pipeline {
                Pipeline::Embed { .. } => flat
                    .into_iter()
                    .map(|s| bytes::Bytes::copy_from_slice(s.as_bytes()))
                    .collect(),
                Pipeline::Classify { .. } => flat
                    .iter()
                    .enumerate()
                    .map(|(i, s)| decode_base64(&format!("inputs[0].data[{i}]"), s))
                    .collect::<Result<_, _>>()?,
                Pipeline::Tabular { .. } => unreachable!("tabular requests return earlier"),
            }
        }
        (None, None) => return Err(ApiError::BadRequest("inputs[0].data: missing".into())),
    };
    if elements.len() != n {
        return Err(ApiError::Unprocessable(format!(
            "inputs[0].data: the shape needs {n} elements, got {}",
            elements.len()
        )));
    }
    let binary_default = request
        .parameters
        .as_ref()
        .and_then(|p| p.get("binary_data_output"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut binary_out = binary_default;
    if let Some(outputs) = &request.outputs {
        for (i, o) in outputs.iter().enumerate() {
            if o.name != sig.output {
                return Err(ApiError::Unprocessable(format!(
                    "outputs[{i}].name: model {name:?} has one output, {:?}; got {:?}",
                    sig.output, o.name
                )));
            }
            if let Some(b) = o
                .parameters
                .as_ref()
                .and_then(|p| p.get("binary_data"))
                .and_then(Value::as_bool)
            {
                binary_out = b;
            }
        }
    }
    let mut timing = Timing::default();
    let rows: Vec<Vec<f32>> = match pipeline {
        Pipeline::Embed { .. } => {
            let texts = elements
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b.to_vec()).map_err(|_| {
                        ApiError::Unprocessable(format!("inputs[0].data[{i}]: not valid UTF-8"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            embed(st, m, texts, None, "inputs[0].data", sched, &mut timing)
                .await?
                .0
        }
        Pipeline::Tabular { .. } => unreachable!("tabular requests return earlier"),
        Pipeline::Classify { .. } => {
            classify(st, m, elements, None, "inputs[0].data", sched, &mut timing)
                .await?
                .into_iter()
                .map(|(_, probs)| probs)
                .collect()
        }
    };
    let tensor = Tensor {
        shape: vec![n, sig.width],
        data: TensorData::F32(rows.into_iter().flatten().collect()),
    };
    let selected = vec![super::encode::Selected {
        name: sig.output.to_string(),
        tensor,
        binary: binary_out,
    }];
    let headers = [
        ("x-convoy-pre-us", timing.pre_us),
        ("x-convoy-queue-us", timing.queue_us),
        ("x-convoy-infer-us", timing.infer_us),
        ("x-convoy-post-us", timing.post_us),
    ];
    Ok(super::encode::response(
        name,
        &m.config.version,
        request.id,
        selected,
        &headers,
    ))
}

/// Predicts with a tabular model from standardised rows (row-major): one value per row,
/// in the target's units.
pub async fn predict(
    m: &Arc<Model>,
    rows: Vec<f32>,
    sched: &Schedule,
    timing: &mut Timing,
) -> Result<Vec<f32>, ApiError> {
    let Some(Pipeline::Tabular { params, output }) = &m.pipeline else {
        return Err(ApiError::Unprocessable(format!(
            "model {:?} is not a tabular model",
            m.config.name
        )));
    };
    let width = params.features.len();
    if rows.is_empty() {
        return Err(ApiError::Unprocessable(
            "instances: expected at least one instance, got none".into(),
        ));
    }
    let max = m.config.batching.max_batch_size;
    let entries = rows
        .chunks(max * width)
        .map(|chunk| {
            let n = chunk.len() / width;
            let t = Tensor {
                shape: vec![n, width],
                data: TensorData::F32(chunk.to_vec()),
            };
            (vec![t], n, vec![width].into_boxed_slice())
        })
        .collect();
    let replies = run_all(m, entries, sched).await?;
    let mut out = Vec::with_capacity(rows.len() / width);
    for r in &replies {
        timing.add_reply(r);
        let TensorData::F32(y) = &r.outputs[*output].data else {
            return Err(ApiError::Internal);
        };
        out.extend(y.iter().map(|&v| params.denormalize(v)));
    }
    Ok(out)
}

/// v2 infer on a tabular model: FP32 raw features [N, features] in column order.
async fn v2_tabular(
    m: &Arc<Model>,
    params: &crate::pipeline::tabular::TabularParams,
    request: super::dto::InferRequest,
    binary: &[u8],
    sched: &Schedule,
) -> Result<axum::response::Response, ApiError> {
    let spec = crate::repository::TensorSpec {
        name: "features".into(),
        datatype: crate::tensor::DataType::F32,
        dims: vec![params.features.len() as i64],
    };
    let max = m.config.batching.max_batch_size;
    let valid = super::decode::decode_inputs(&m.config.name, request.inputs, &[spec], max, binary)?;
    let Some(Tensor {
        data: TensorData::F32(mut raw),
        ..
    }) = valid.tensors.into_iter().next()
    else {
        return Err(ApiError::Internal);
    };
    params.standardize(&mut raw);
    let mut timing = Timing::default();
    let y = predict(m, raw, sched, &mut timing).await?;
    let n = y.len();
    let selected = vec![super::encode::Selected {
        name: "prediction".into(),
        tensor: Tensor {
            shape: vec![n, 1],
            data: TensorData::F32(y),
        },
        binary: false,
    }];
    let headers = [
        ("x-convoy-queue-us", timing.queue_us),
        ("x-convoy-infer-us", timing.infer_us),
    ];
    Ok(super::encode::response(
        &m.config.name,
        &m.config.version,
        request.id,
        selected,
        &headers,
    ))
}
