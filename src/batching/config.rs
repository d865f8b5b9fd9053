//! How the dynamic batcher treats a model: the settings the scheduler, the policy and
//! admission read. Parsed from `model.toml`'s `[dynamic_batching]` table by the model
//! repository, which re-exports these types; this layer never reads files itself.

use std::time::Duration;

/// Rows that may wait in a model's queue when `model.toml` does not say.
pub const DEFAULT_QUEUE_ROWS: usize = 4096;

/// How long a request waits before it outranks every priority level, when `model.toml`
/// does not say (`priority_aging_us`).
pub const DEFAULT_PRIORITY_AGING: Duration = Duration::from_millis(100);

/// How the dynamic batcher treats this model.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchingConfig {
    /// Rows per batch at most (1 = every request runs alone).
    pub max_batch_size: usize,
    /// Whether requests are combined at all (Triton's `dynamic_batching` block present).
    pub dynamic: bool,
    /// How long the oldest request may wait for company.
    pub max_queue_delay: Duration,
    /// Sizes the batcher dispatches at as soon as it reaches them (sorted, ≤ max).
    pub preferred_batch_sizes: Vec<usize>,
    /// Rows that may wait; beyond, requests are refused with 429.
    pub max_queue_rows: usize,
    /// Tokens (elements of the first input) that may wait: a text model's budget.
    pub max_queue_tokens: Option<usize>,
    /// Replaces the fixed window: the window follows the learned batch cost and the
    /// device (see `batching::policy::slo_window`), never past the moment that keeps the
    /// oldest request's queue + compute time inside this target.
    pub latency_target: Option<Duration>,
    /// With `latency_target`: refuse (429) at admission a request whose predicted
    /// queue and compute time, by the learned batch cost, exceeds the target, instead
    /// of admitting it to be answered late (`batching::policy::predicted_latency`).
    pub shed_beyond_target: bool,
    /// Deadline of requests that do not set their own (`None`: no deadline).
    pub default_timeout: Option<Duration>,
    /// Priority levels, 1 = highest; requests without one get `default_priority`.
    pub priority_levels: u32,
    pub default_priority: u32,
    /// After waiting this long a request outranks every level (no starvation).
    pub priority_aging: Duration,
    /// Requests of different non-batch shapes share batches, zero-padded to the longest
    /// (set for text pipelines).
    pub ragged: bool,
}

impl Default for BatchingConfig {
    /// One request at a time, no window, no deadline, one priority level.
    fn default() -> BatchingConfig {
        BatchingConfig {
            max_batch_size: 1,
            dynamic: false,
            max_queue_delay: Duration::ZERO,
            preferred_batch_sizes: vec![],
            max_queue_rows: DEFAULT_QUEUE_ROWS,
            max_queue_tokens: None,
            latency_target: None,
            shed_beyond_target: false,
            default_timeout: None,
            priority_levels: 1,
            default_priority: 1,
            priority_aging: DEFAULT_PRIORITY_AGING,
            ragged: false,
        }
    }
}
