//! Submitting work to a model and waiting for it, shared by every inference route.

use std::time::Instant;

use tokio::sync::oneshot::Receiver;

use crate::batching::{Entry, Reply, SchedulerError};
use crate::error::ApiError;
use crate::repository::Model;

/// Queues `entry` on `m` and waits for its rows, at most until `deadline`: the
/// scheduler answers 504 for a request still queued then; the timeout here covers one
/// whose batch is still running.
pub async fn submit_and_wait(
    m: &Model,
    entry: Entry,
    rx: Receiver<Result<Reply, SchedulerError>>,
    deadline: Option<Instant>,
) -> Result<Reply, ApiError> {
    m.batcher.submit(entry)?;
    let answer = match deadline {
        Some(d) => tokio::time::timeout_at(tokio::time::Instant::from_std(d), rx)
            .await
            .map_err(|_| {
                ApiError::Timeout(format!(
                    "model {:?}: the request's deadline passed while its batch ran",
                    m.config.name
                ))
            })?,
        None => rx.await,
    };
    Ok(answer.map_err(|_| ApiError::Internal)??)
}
