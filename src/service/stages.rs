//! A pipeline model: its pre-stage turns the served input into batch-sized pieces on the
//! CPU pool, the batcher runs them, its post-stage turns the replies into the served
//! output. Requests larger than a batch are cut into pieces (text sorted by length
//! first, so each piece pads little), admitted all together or not at all.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;

use crate::batching::{Reply, ShapeKey};
use crate::error::{Error, Result};
use crate::pipeline::image::preprocess;
use crate::pipeline::pool::CpuPool;
use crate::pipeline::post::{mean_pool_normalized, softmax};
use crate::pipeline::text::Encoded;
use crate::pipeline::Pipeline;
use crate::repository::Model;
use crate::tensor::{Payload, Tensor, TensorData};

use super::plain::select;
use super::request::{Request, Response, Schedule, Timing};
use super::run::{run_all, Piece};
use super::{schedule, validate};
use crate::repository::served::Served;

/// What the stages share: the model, the pool, the schedule, the timing being filled.
struct Run<'a> {
    pool: &'a CpuPool,
    m: &'a Arc<Model>,
    s: &'a Schedule,
    timing: Timing,
}

impl Run<'_> {
    async fn batches(&mut self, pieces: Vec<Piece>) -> Result<Vec<Reply>> {
        let (deadline, priority) = schedule::resolve(self.s, &self.m.config.batching)?;
        let id = &self.s.request_id;
        run_all(self.m, pieces, deadline, priority, id, &mut self.timing).await
    }

    fn pre_done(&mut self, t0: Instant) {
        self.timing.pre_us = t0.elapsed().as_micros() as u64;
        let m = self.m.batcher.metrics();
        m.preprocess.record(t0.elapsed().as_secs_f64());
    }

    fn post_done(&mut self, t0: Instant) {
        self.timing.post_us = t0.elapsed().as_micros() as u64;
        let m = self.m.batcher.metrics();
        m.postprocess.record(t0.elapsed().as_secs_f64());
    }
}

/// `wanted`: the outputs asked for, already resolved (see `Core::infer`).
pub async fn infer(
    pool: &CpuPool,
    m: &Arc<Model>,
    request: Request,
    served: &Served,
    wanted: &[(usize, bool)],
    s: &Schedule,
) -> Result<Response> {
    let name = &m.config.name;
    let (mut inputs, n) = validate::inputs(name, request.inputs, &served.inputs, None)?;
    let input = inputs.pop().ok_or_else(Error::internal)?;
    let field = input.field.unwrap_or("inputs[0].data");
    let mut run = Run {
        pool,
        m,
        s,
        timing: Timing::default(),
    };
    let (rows, tokens) = match (&m.pipeline, input.payload) {
        (Some(Pipeline::Embed { .. }), Payload::Bytes(b)) => {
            let texts = utf8(field, b)?;
            let (rows, tokens) = embed(&mut run, texts, request.truncate, field).await?;
            (rows, Some(tokens))
        }
        (Some(Pipeline::Classify { .. }), Payload::Bytes(b)) => {
            (classify(&mut run, b, field).await?, None)
        }
        (Some(Pipeline::Tabular { .. }), Payload::Numeric(TensorData::F32(raw))) => {
            (tabular(&mut run, raw).await?, None)
        }
        _ => return Err(Error::internal()),
    };
    let width = served.outputs[0].dims.first().copied().unwrap_or(1) as usize;
    let tensor = Tensor {
        shape: vec![n, width],
        data: TensorData::F32(rows.into_iter().flatten().collect()),
    };
    let outputs = select(vec![tensor], wanted, |k| served.outputs[k].name.clone())?;
    Ok(Response {
        model: m.clone(),
        id: request.id,
        outputs,
        timing: run.timing,
        tokens,
    })
}

fn utf8(field: &str, elements: Vec<Bytes>) -> Result<Vec<String>> {
    elements
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            String::from_utf8(b.to_vec())
                .map_err(|_| Error::unprocessable(format!("{field}[{i}]: not valid UTF-8")))
        })
        .collect()
}

/// Smallest length bucket holding `n` tokens: 16, 32, 64, ... (text batches form per
/// bucket, so short texts do not pay for long ones).
pub fn length_bucket(n: usize) -> usize {
    n.max(16).next_power_of_two()
}

/// Embeds `texts`: one unit vector per text, and the token count.
async fn embed(
    run: &mut Run<'_>,
    texts: Vec<String>,
    truncate: Option<bool>,
    field: &'static str,
) -> Result<(Vec<Vec<f32>>, usize)> {
    let m = run.m.clone();
    let Some(Pipeline::Embed {
        truncate_default,
        output,
        dim,
        ..
    }) = &m.pipeline
    else {
        return Err(Error::internal());
    };
    let truncate = truncate.unwrap_or(*truncate_default);
    let t0 = Instant::now();
    let model = m.clone();
    let encoded: Vec<Encoded> = run
        .pool
        .run(move || match &model.pipeline {
            Some(Pipeline::Embed { text, .. }) => text.encode(&texts, truncate, field),
            _ => Ok(Vec::new()),
        })
        .await??;
    let tokens: usize = encoded.iter().map(|e| e.ids.len()).sum();
    // Sort by length, cut into batch-sized pieces, each padded to its own longest.
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&i| encoded[i].ids.len());
    let chunks: Vec<Vec<usize>> = order
        .chunks(m.config.batching.max_batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    let pieces = chunks
        .iter()
        .map(|chunk| text_piece(&m, &encoded, chunk))
        .collect::<Result<_>>()?;
    run.pre_done(t0);
    let replies = run.batches(pieces).await?;
    let t1 = Instant::now();
    let (output, dim) = (*output, *dim);
    let vectors = run
        .pool
        .run(move || {
            let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); encoded.len()];
            for (chunk, reply) in chunks.iter().zip(&replies) {
                let hidden = reply.outputs.get(output).ok_or_else(Error::internal)?;
                let TensorData::F32(h) = &hidden.data else {
                    return Err(Error::internal());
                };
                let per_row = hidden.row_len();
                for (j, &i) in chunk.iter().enumerate() {
                    let row = h
                        .get(j * per_row..(j + 1) * per_row)
                        .ok_or_else(Error::internal)?;
                    vectors[i] = mean_pool_normalized(row, dim, &encoded[i].mask);
                }
            }
            Ok(vectors)
        })
        .await??;
    run.post_done(t1);
    Ok((vectors, tokens))
}

/// One batch-sized piece of texts: ids, mask (and type ids) padded to its longest.
fn text_piece(m: &Model, encoded: &[Encoded], chunk: &[usize]) -> Result<Piece> {
    let Some(Pipeline::Embed {
        ids,
        mask,
        type_ids,
        bucketing,
        ..
    }) = &m.pipeline
    else {
        return Err(Error::internal());
    };
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
    let mut tensors: Vec<Option<Tensor>> = vec![None; m.config.inputs.len()];
    tensors[*ids] = Some(pad(&|e| &e.ids));
    tensors[*mask] = Some(pad(&|e| &e.mask));
    if let Some(t) = type_ids {
        tensors[*t] = Some(pad(&|e| &e.type_ids));
    }
    let key: ShapeKey = if *bucketing {
        vec![length_bucket(len)].into_boxed_slice()
    } else {
        Box::new([])
    };
    Ok(Piece {
        tensors: tensors
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(Error::internal)?,
        rows: chunk.len(),
        key,
    })
}

/// An element is read as an image when it starts like a PNG or JPEG, as base64 text
/// otherwise (JSON carries images as base64 strings; binary data as raw bytes). No
/// base64 text starts with those bytes, so the two cannot be confused.
fn image_bytes(field: &str, i: usize, b: Bytes) -> Result<Bytes> {
    const PNG: &[u8] = b"\x89PNG";
    const JPEG: &[u8] = b"\xFF\xD8";
    if b.starts_with(PNG) || b.starts_with(JPEG) {
        return Ok(b);
    }
    let text = std::str::from_utf8(&b).unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(Bytes::from)
        .map_err(|e| {
            Error::unprocessable(format!(
                "{field}[{i}]: not a PNG or JPEG image, nor base64 text of one ({e})"
            ))
        })
}

/// Class probabilities (or scores, without softmax) per image.
async fn classify(
    run: &mut Run<'_>,
    images: Vec<Bytes>,
    field: &'static str,
) -> Result<Vec<Vec<f32>>> {
    let m = run.m.clone();
    let t0 = Instant::now();
    let images = images
        .into_iter()
        .enumerate()
        .map(|(i, b)| image_bytes(field, i, b))
        .collect::<Result<Vec<_>>>()?;
    let model = m.clone();
    let pixels: Vec<Vec<f32>> = run
        .pool
        .run(move || {
            let Some(Pipeline::Classify { image, .. }) = &model.pipeline else {
                return Ok(Vec::new());
            };
            images
                .iter()
                .enumerate()
                .map(|(i, b)| preprocess(b, image, &format!("{field}[{i}]")))
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .await??;
    let dims: Vec<usize> = m.config.inputs[0]
        .dims
        .iter()
        .map(|&d| d.max(1) as usize)
        .collect();
    let pieces = pixels
        .chunks(m.config.batching.max_batch_size)
        .map(|chunk| {
            let mut shape = vec![chunk.len()];
            shape.extend_from_slice(&dims);
            Piece {
                tensors: vec![Tensor {
                    shape,
                    data: TensorData::F32(chunk.concat()),
                }],
                rows: chunk.len(),
                key: dims.clone().into_boxed_slice(),
            }
        })
        .collect();
    run.pre_done(t0);
    let replies = run.batches(pieces).await?;
    let t1 = Instant::now();
    let Some(Pipeline::Classify {
        output,
        labels,
        softmax: apply,
        ..
    }) = &m.pipeline
    else {
        return Err(Error::internal());
    };
    let mut out = Vec::new();
    for reply in &replies {
        let scores = reply.outputs.get(*output).ok_or_else(Error::internal)?;
        let TensorData::F32(s) = &scores.data else {
            return Err(Error::internal());
        };
        for row in s.chunks(labels.len()) {
            out.push(if *apply { softmax(row) } else { row.to_vec() });
        }
    }
    run.post_done(t1);
    Ok(out)
}

/// Predictions in the target's units from raw features, row-major in column order.
async fn tabular(run: &mut Run<'_>, mut raw: Vec<f32>) -> Result<Vec<Vec<f32>>> {
    let m = run.m.clone();
    let Some(Pipeline::Tabular { params, output }) = &m.pipeline else {
        return Err(Error::internal());
    };
    let t0 = Instant::now();
    params.standardize(&mut raw);
    let width = params.features.len();
    let pieces = raw
        .chunks(m.config.batching.max_batch_size * width)
        .map(|chunk| Piece {
            tensors: vec![Tensor {
                shape: vec![chunk.len() / width, width],
                data: TensorData::F32(chunk.to_vec()),
            }],
            rows: chunk.len() / width,
            key: vec![width].into_boxed_slice(),
        })
        .collect();
    run.pre_done(t0);
    let replies = run.batches(pieces).await?;
    let mut out = Vec::with_capacity(raw.len() / width);
    for r in &replies {
        let y = r.outputs.get(*output).ok_or_else(Error::internal)?;
        let TensorData::F32(y) = &y.data else {
            return Err(Error::internal());
        };
        out.extend(y.iter().map(|&v| vec![params.denormalize(v)]));
    }
    Ok(out)
}
