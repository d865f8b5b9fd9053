//! The dynamic batcher: a bounded queue per model, a scheduler thread that forms batches
//! with the pure [`policy`], and device worker threads that run them.
//!
//! ```text
//! handler ── submit_all(entries) ──▶ State (one lock: queue, cost, company, running,
//!                                    │       handed, calibration, slots; one condvar)
//!                                    ▼
//!                          scheduler thread ── decide(queue, now)   (dispatch.rs)
//!                                    │ stack rows (batch.rs)
//!                                    ▼ channel (capacity = instances: one batch prefetched)
//!                          worker threads ── Backend::run, split rows (worker.rs)
//!  handler ◀── oneshot(Reply) ◀──────┘
//! ```

pub mod admission;
pub mod batch;
pub mod company;
pub mod config;
pub mod cost;
mod dispatch;
mod pending;
pub mod policy;
pub mod queue;
pub mod scheduler;
mod state;
pub mod stats;
mod worker;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::tensor::Tensor;
pub use config::{BatchingConfig, DEFAULT_QUEUE_ROWS};
pub use policy::{Pending, ShapeKey};
pub use scheduler::Batcher;

/// Errors of the batching layer, as the handler sees them.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SchedulerError {
    #[error("model {model:?}: queue full ({queued} {unit} waiting, limit {limit}); retry later")]
    QueueFull {
        model: String,
        queued: usize,
        limit: usize,
        /// "rows", or "tokens" for a text model's token budget.
        unit: &'static str,
        retry_after: Duration,
    },
    /// `shed_beyond_target`: the request would finish past the latency target.
    #[error("model {model:?}: predicted queue + compute time {predicted_ms} ms is beyond the latency target of {target_ms} ms; retry later")]
    BeyondTarget {
        model: String,
        predicted_ms: u64,
        target_ms: u64,
        retry_after: Duration,
    },
    #[error("model {model:?} is shutting down and takes no new requests")]
    ShuttingDown { model: String },
    /// The deadline passed while the request waited; it never reached the device.
    #[error("model {model:?}: the request's deadline passed after {waited_ms} ms in the queue")]
    Expired { model: String, waited_ms: u64 },
    /// The batch failed on the device or in assembly; detail was logged.
    #[error("inference failed")]
    Internal,
}

/// What a caller gets back: its own rows of every output, and where time went.
#[derive(Debug)]
pub struct Reply {
    pub outputs: Vec<Tensor>,
    /// Time from admission until its batch started on a worker (the hand-over wait
    /// included).
    pub queue: Duration,
    /// Time the batch spent in the backend.
    pub compute: Duration,
    /// Rows in the batch this request ran in.
    pub batch_rows: usize,
}

/// One request waiting in a model's queue.
#[derive(Debug)]
pub struct Entry {
    pub pending: Pending,
    /// One tensor per model input, in declared order, batch dimension first.
    pub inputs: Vec<Tensor>,
    pub reply: oneshot::Sender<Result<Reply, SchedulerError>>,
    /// The request id, so a failed batch's log line names its requests.
    pub request_id: Option<std::sync::Arc<str>>,
    /// Queue + compute time estimated at admission, margin included (set where
    /// `shed_beyond_target` checks it), compared with the actual time to steer the margin.
    pub predicted: Option<Duration>,
}

impl Entry {
    /// An entry and the receiver its answer arrives on.
    pub fn new(
        inputs: Vec<Tensor>,
        rows: usize,
        shape: ShapeKey,
    ) -> (Entry, oneshot::Receiver<Result<Reply, SchedulerError>>) {
        let (tx, rx) = oneshot::channel();
        let entry = Entry {
            pending: Pending {
                rows,
                units: inputs.first().map_or(rows, |t| t.data.len()),
                shape,
                enqueued: std::time::Instant::now(),
                deadline: None,
                priority: 1,
            },
            inputs,
            reply: tx,
            request_id: None,
            predicted: None,
        };
        (entry, rx)
    }

    /// Sets when the request stops being worth running, and its priority level.
    pub fn with_schedule(mut self, deadline: Option<std::time::Instant>, priority: u32) -> Entry {
        self.pending.deadline = deadline;
        self.pending.priority = priority;
        self
    }

    /// Tags the entry with its request id (for the log, should its batch fail).
    pub fn with_request_id(mut self, id: std::sync::Arc<str>) -> Entry {
        self.request_id = Some(id);
        self
    }
}
