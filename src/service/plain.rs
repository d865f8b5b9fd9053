//! A plain model: the request's tensors are one entry of the batcher; the reply's rows
//! are the outputs asked for.

use std::time::Instant;

use crate::batching::ShapeKey;
use crate::error::{Error, Result};
use crate::repository::Model;
use crate::tensor::{Payload, Tensor};

use super::request::{Output, Request, Response, Schedule, Timing};
use super::run::{run_all, Piece};
use super::{schedule, validate};
use crate::repository::served::Served;

/// `wanted`: the outputs asked for, already resolved (see `Core::infer`).
pub async fn infer(
    m: &std::sync::Arc<Model>,
    request: Request,
    served: &Served,
    wanted: &[(usize, bool)],
    s: &Schedule,
) -> Result<Response> {
    let name = &m.config.name;
    let max = m.config.batching.max_batch_size;
    let (inputs, rows) = validate::inputs(name, request.inputs, &served.inputs, Some(max))?;
    let tensors: Vec<Tensor> = inputs
        .into_iter()
        .map(|i| match i.payload {
            Payload::Numeric(data) => Ok(Tensor {
                shape: i.shape,
                data,
            }),
            // Validation matched every input's type to the graph's, which is numeric.
            Payload::Bytes(_) => Err(Error::internal()),
        })
        .collect::<Result<_>>()?;
    let key: ShapeKey = tensors
        .iter()
        .flat_map(|t| t.shape[1..].iter().copied())
        .collect();
    let (deadline, priority) = schedule::resolve(s, &m.config.batching)?;
    // Pre-processing of a plain model is the door's decoding and this validation: from
    // the request's arrival until it is queued.
    let pre = s.arrived.elapsed();
    let mut timing = Timing {
        pre_us: pre.as_micros() as u64,
        ..Timing::default()
    };
    let metrics = m.batcher.metrics();
    metrics.preprocess.record(pre.as_secs_f64());
    let piece = Piece { tensors, rows, key };
    let mut replies = run_all(
        m,
        vec![piece],
        deadline,
        priority,
        &s.request_id,
        &mut timing,
    )
    .await?;
    let post = Instant::now();
    let reply = replies.pop().ok_or_else(Error::internal)?;
    let outputs = select(reply.outputs, wanted, |k| served.outputs[k].name.clone())?;
    timing.post_us = post.elapsed().as_micros() as u64;
    metrics.postprocess.record(post.elapsed().as_secs_f64());
    Ok(Response {
        model: m.clone(),
        id: request.id,
        outputs,
        timing,
        tokens: None,
    })
}

/// The outputs asked for, in the order asked: each tensor moved out at its last use,
/// cloned only for an output asked twice.
pub fn select(
    all: Vec<Tensor>,
    wanted: &[(usize, bool)],
    name: impl Fn(usize) -> String,
) -> Result<Vec<Output>> {
    let mut pool: Vec<Option<Tensor>> = all.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(wanted.len());
    for (i, &(k, binary)) in wanted.iter().enumerate() {
        let used_again = wanted[i + 1..].iter().any(|&(j, _)| j == k);
        let slot = pool.get_mut(k).ok_or_else(Error::internal)?;
        let tensor = if used_again {
            slot.clone()
        } else {
            slot.take()
        };
        out.push(Output {
            name: name(k),
            tensor: tensor.ok_or_else(Error::internal)?,
            binary,
        });
    }
    Ok(out)
}
