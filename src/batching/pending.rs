//! What the policy and the company record know of one waiting request: its size, shape,
//! age, deadline and priority. Below both, so neither needs the other for it.

use std::time::Instant;

/// The shape of a request's non-batch dimensions, all inputs concatenated. Two
/// requests share a batch only when their keys are equal.
pub type ShapeKey = Box<[usize]>;

/// What the policy needs to know of one waiting request.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub rows: usize,
    /// Elements of the request's first input: rows × row width, so for text the
    /// tokens it brings (padded within the request).
    pub units: usize,
    pub shape: ShapeKey,
    pub enqueued: Instant,
    /// When the request stops being worth running (answered 504 instead).
    pub deadline: Option<Instant>,
    /// Priority level, 1 = highest.
    pub priority: u32,
}

impl Pending {
    /// Units of work this request adds to a batch (see `units`).
    pub fn work(&self) -> f64 {
        self.units as f64
    }
}
