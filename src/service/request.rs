//! The core's request and response: what every front door maps its wire format onto.
//! Typed, validated later against the model's served tensors (see `validate`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::repository::Model;
use crate::tensor::{Payload, Tensor};

/// One inference, as a door decoded it.
#[derive(Debug, Default)]
pub struct Request {
    /// Echoed in the response.
    pub id: Option<String>,
    pub inputs: Vec<Input>,
    /// Which outputs, in which order; `None`: every output, in declared order.
    pub outputs: Option<Vec<OutputRequest>>,
    /// The encoding asked for outputs that do not say (`binary_data_output`).
    pub binary_default: bool,
    /// Text models: truncate over-long texts (`true`) or refuse them; `None`: the model's
    /// default.
    pub truncate: Option<bool>,
}

/// One input tensor: its name, full shape (batch first) and data.
#[derive(Debug)]
pub struct Input {
    pub name: String,
    pub shape: Vec<usize>,
    pub payload: Payload,
    /// How the door names this input's elements in errors (`input` for OpenAI's
    /// embeddings, `images`); `None`: `inputs[i].data`.
    pub field: Option<&'static str>,
}

impl Input {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, payload: Payload) -> Input {
        Input {
            name: name.into(),
            shape,
            payload,
            field: None,
        }
    }
}

/// One output asked for by name; `binary`: the door's binary encoding, where it has one.
#[derive(Debug, Clone)]
pub struct OutputRequest {
    pub name: String,
    pub binary: Option<bool>,
}

/// How the request is scheduled, as the door read it; the model's defaults fill in the
/// rest (see `Schedule::resolve`).
#[derive(Debug, Clone)]
pub struct Schedule {
    /// When the request arrived (the deadline counts from here).
    pub arrived: Instant,
    pub timeout: Option<Duration>,
    /// 0 or absent: the model's default level; 1 is the highest.
    pub priority: Option<u64>,
    /// For the log, should its batch fail.
    pub request_id: Arc<str>,
}

impl Schedule {
    /// A schedule with the model's defaults.
    pub fn new(arrived: Instant, request_id: Arc<str>) -> Schedule {
        Schedule {
            arrived,
            timeout: None,
            priority: None,
            request_id,
        }
    }
}

/// One output as the door encodes it.
#[derive(Debug)]
pub struct Output {
    pub name: String,
    pub tensor: Tensor,
    /// Asked for as binary data (the door decides what that means on its wire).
    pub binary: bool,
}

/// Where a request's time went, for the `x-convoy-*-us` headers and the log.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Timing {
    pub pre_us: u64,
    pub queue_us: u64,
    pub infer_us: u64,
    pub post_us: u64,
    /// Rows in the (largest) batch the request ran in.
    pub batch_rows: usize,
}

impl Timing {
    /// The timing headers every HTTP door sends (microseconds, and rows).
    pub fn headers(&self) -> [(&'static str, u64); 5] {
        [
            ("x-convoy-pre-us", self.pre_us),
            ("x-convoy-queue-us", self.queue_us),
            ("x-convoy-infer-us", self.infer_us),
            ("x-convoy-post-us", self.post_us),
            ("x-convoy-batch-rows", self.batch_rows as u64),
        ]
    }
}

/// The answer to one inference.
pub struct Response {
    /// The model that answered (its name, version and labels for the doors' bodies).
    pub model: Arc<Model>,
    pub id: Option<String>,
    pub outputs: Vec<Output>,
    pub timing: Timing,
    /// Text models: tokens fed to the model (OpenAI's `usage`).
    pub tokens: Option<usize>,
}
