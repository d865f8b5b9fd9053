//! Submitting a request's entries to a model's batcher and waiting for their rows.

use std::time::Instant;

use crate::batching::{Entry, Reply, ShapeKey};
use crate::error::{Error, ErrorKind, Result};
use crate::repository::Model;
use crate::tensor::Tensor;

use super::request::Timing;

/// One batch-sized piece of a request: its input tensors, rows and shape key.
pub struct Piece {
    pub tensors: Vec<Tensor>,
    pub rows: usize,
    pub key: ShapeKey,
}

/// Queues every piece of one request, all or none, and waits for their replies (in the
/// same order), at most until `deadline`: the scheduler answers 504 for a piece still
/// queued then; the timeout here covers one whose batch is still running.
pub async fn run_all(
    m: &Model,
    pieces: Vec<Piece>,
    deadline: Option<Instant>,
    priority: u32,
    request_id: &std::sync::Arc<str>,
    timing: &mut Timing,
) -> Result<Vec<Reply>> {
    let mut entries = Vec::with_capacity(pieces.len());
    let mut receivers = Vec::with_capacity(pieces.len());
    for p in pieces {
        let (entry, rx) = Entry::new(p.tensors, p.rows, p.key);
        entries.push(
            entry
                .with_request_id(request_id.clone())
                .with_schedule(deadline, priority),
        );
        receivers.push(rx);
    }
    m.batcher.submit_all(entries)?;
    let model = m.config.name.as_str();
    let replies = match receivers.len() {
        // The common case, one piece: no join machinery on the hot path.
        1 => vec![
            wait(
                receivers.pop().ok_or_else(Error::internal)?,
                deadline,
                model,
            )
            .await?,
        ],
        // Every piece is queued before the first wait, so they can share batches.
        _ => {
            let waits = receivers.into_iter().map(|rx| wait(rx, deadline, model));
            futures::future::try_join_all(waits).await?
        }
    };
    for r in &replies {
        timing.queue_us = timing.queue_us.max(r.queue.as_micros() as u64);
        timing.infer_us = timing.infer_us.max(r.compute.as_micros() as u64);
        timing.batch_rows = timing.batch_rows.max(r.batch_rows);
    }
    Ok(replies)
}

/// One piece's reply, at most until `deadline`.
async fn wait(
    rx: tokio::sync::oneshot::Receiver<std::result::Result<Reply, crate::batching::SchedulerError>>,
    deadline: Option<Instant>,
    model: &str,
) -> Result<Reply> {
    let answer = match deadline {
        Some(d) => tokio::time::timeout_at(tokio::time::Instant::from_std(d), rx)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("model {model:?}: the request's deadline passed while its batch ran"),
                )
            })?,
        None => rx.await,
    };
    Ok(answer.map_err(|_| Error::internal())??)
}
