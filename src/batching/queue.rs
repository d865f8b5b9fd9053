//! A model's waiting requests, bounded in rows (and, for text, in tokens). Plain data behind a std `Mutex` (never
//! held across an await): admission and removal are O(1) except for batches that skip
//! over requests of another shape.

use std::collections::VecDeque;
use std::time::Duration;

use super::{Entry, SchedulerError};

/// The queue of one model.
#[derive(Debug)]
pub struct Queue {
    model: String,
    entries: VecDeque<Entry>,
    /// Rows currently waiting (sum of `entries[i].pending.rows`).
    rows: usize,
    /// Admission limit in rows.
    limit: usize,
    /// Units (elements of the first input: tokens for text) waiting, and their limit.
    units: usize,
    unit_limit: Option<usize>,
    /// Set at shutdown: admission refuses, the scheduler drains what is left.
    closed: bool,
}

impl Queue {
    pub fn new(model: &str, limit: usize, unit_limit: Option<usize>) -> Queue {
        Queue {
            model: model.to_string(),
            entries: VecDeque::new(),
            rows: 0,
            limit,
            units: 0,
            unit_limit,
            closed: false,
        }
    }

    /// Admits `entry`, or drops it and returns the reason (see [`Queue::push_all`]).
    pub fn push(&mut self, entry: Entry, drain_per_row: Duration) -> Result<(), SchedulerError> {
        self.push_all(vec![entry], drain_per_row)
            .map_err(|(reason, _)| reason)
    }

    /// Admits every entry of one request, or none: the row and token bounds are checked
    /// for their sum. On refusal the entries are given back with the reason (so the
    /// caller can drop them, which tells their receivers, outside its lock).
    /// `drain_per_row` is the measured device time per row, used to tell the client when
    /// to retry.
    pub fn push_all(
        &mut self,
        entries: Vec<Entry>,
        drain_per_row: Duration,
    ) -> Result<(), (SchedulerError, Vec<Entry>)> {
        let rows: usize = entries.iter().map(|e| e.pending.rows).sum();
        let units: usize = entries.iter().map(|e| e.pending.units).sum();
        if let Err(reason) = self.admits(rows, units, drain_per_row) {
            return Err((reason, entries));
        }
        self.rows += rows;
        self.units += units;
        self.entries.extend(entries);
        Ok(())
    }

    /// Whether `rows` and `units` more fit, and why not.
    fn admits(
        &self,
        rows: usize,
        units: usize,
        drain_per_row: Duration,
    ) -> Result<(), SchedulerError> {
        if self.closed {
            let err = SchedulerError::ShuttingDown {
                model: self.model.clone(),
            };
            return Err(err);
        }
        if self.rows + rows > self.limit {
            let err = SchedulerError::QueueFull {
                model: self.model.clone(),
                queued: self.rows,
                limit: self.limit,
                unit: "rows",
                retry_after: retry_after(self.rows, drain_per_row),
            };
            return Err(err);
        }
        if let Some(limit) = self.unit_limit.filter(|&l| self.units + units > l) {
            let err = SchedulerError::QueueFull {
                model: self.model.clone(),
                queued: self.units,
                limit,
                unit: "tokens",
                retry_after: retry_after(self.rows, drain_per_row),
            };
            return Err(err);
        }
        Ok(())
    }

    /// Removes and returns the entries at `positions` (ascending), keeping the order of
    /// the rest.
    pub fn take(&mut self, positions: &[usize]) -> Vec<Entry> {
        let taken: Vec<Entry> = if positions.iter().enumerate().all(|(k, &p)| k == p) {
            self.entries.drain(..positions.len()).collect()
        } else {
            let mut taken = Vec::with_capacity(positions.len());
            let mut keep = VecDeque::with_capacity(self.entries.len() - positions.len());
            let mut next = positions.iter().peekable();
            for (i, e) in self.entries.drain(..).enumerate() {
                if next.peek() == Some(&&i) {
                    next.next();
                    taken.push(e);
                } else {
                    keep.push_back(e);
                }
            }
            self.entries = keep;
            taken
        };
        self.rows -= taken.iter().map(|e| e.pending.rows).sum::<usize>();
        self.units -= taken.iter().map(|e| e.pending.units).sum::<usize>();
        taken
    }

    /// The waiting requests as the policy sees them, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &super::Pending> {
        self.entries.iter().map(|e| &e.pending)
    }

    /// Units (elements of the first input) waiting: see [`super::Pending::units`].
    pub fn units(&self) -> usize {
        self.units
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// How long until `queued` rows drain at `per_row` each: whole seconds in 1..=60 (the
/// unit of `Retry-After`), 1 s when nothing has been measured yet.
pub fn retry_after(queued: usize, per_row: Duration) -> Duration {
    whole_seconds(per_row.mul_f64(queued as f64))
}

/// `d` rounded up to whole seconds (what `Retry-After` carries), within 1..=60.
pub fn whole_seconds(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs_f64().ceil().clamp(1.0, 60.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Tensor, TensorData};

    fn entry(rows: usize) -> Entry {
        let t = Tensor {
            shape: vec![rows, 1],
            data: TensorData::F32(vec![rows as f32; rows]),
        };
        Entry::new(vec![t], rows, vec![1].into_boxed_slice()).0
    }

    #[test]
    fn admission_is_bounded_in_rows() {
        let mut q = Queue::new("m", 5, None);
        assert!(q.push(entry(3), Duration::ZERO).is_ok());
        assert!(q.push(entry(2), Duration::ZERO).is_ok());
        let err = q.push(entry(1), Duration::from_millis(300)).unwrap_err();
        assert_eq!(
            err,
            SchedulerError::QueueFull {
                model: "m".into(),
                queued: 5,
                limit: 5,
                unit: "rows",
                retry_after: Duration::from_secs(2)
            }
        );
        assert_eq!(q.rows(), 5);
    }

    #[test]
    fn take_keeps_the_order_of_the_rest() {
        let mut q = Queue::new("m", 100, None);
        for rows in 1..=5 {
            q.push(entry(rows), Duration::ZERO).unwrap();
        }
        let taken: Vec<usize> = q.take(&[1, 3]).iter().map(|e| e.pending.rows).collect();
        assert_eq!(taken, vec![2, 4]);
        let rest: Vec<usize> = q.pending().map(|p| p.rows).collect();
        assert_eq!(rest, vec![1, 3, 5]);
        assert_eq!(q.rows(), 9);
        let taken: Vec<usize> = q.take(&[0, 1]).iter().map(|e| e.pending.rows).collect();
        assert_eq!(taken, vec![1, 3]);
        assert_eq!(q.rows(), 5);
    }

    #[test]
    fn a_token_budget_bounds_text_queues() {
        // Entries of r rows × 1 element: r units each; 6 units allowed.
        let mut q = Queue::new("m", 100, Some(6));
        q.push(entry(4), Duration::ZERO).unwrap();
        let err = q.push(entry(3), Duration::ZERO).unwrap_err();
        assert!(
            err.to_string().contains("4 tokens waiting, limit 6"),
            "{err}"
        );
        q.push(entry(2), Duration::ZERO).unwrap();
        q.take(&[0]);
        q.push(entry(3), Duration::ZERO).unwrap();
    }

    #[test]
    fn a_request_of_several_entries_is_admitted_whole_or_not_at_all() {
        let mut q = Queue::new("m", 5, None);
        q.push(entry(2), Duration::ZERO).unwrap();
        // 2 + 2 would fit, 2 + 2 + 1 would not: none of the three is queued.
        let (err, back) = q
            .push_all(vec![entry(2), entry(2), entry(1)], Duration::ZERO)
            .unwrap_err();
        assert_eq!(back.len(), 3);
        assert!(
            matches!(
                err,
                SchedulerError::QueueFull {
                    queued: 2,
                    limit: 5,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(q.rows(), 2);
        assert_eq!(q.pending().count(), 1);
        // A request that fits as a whole is queued whole, in order.
        q.push_all(vec![entry(1), entry(2)], Duration::ZERO)
            .unwrap();
        let rows: Vec<usize> = q.pending().map(|p| p.rows).collect();
        assert_eq!(rows, vec![2, 1, 2]);
        assert_eq!((q.rows(), q.units()), (5, 5));
    }

    #[test]
    fn the_token_budget_is_checked_for_a_whole_request() {
        // r rows × 1 element: r units each; 6 allowed, 2 waiting.
        let mut q = Queue::new("m", 100, Some(6));
        q.push(entry(2), Duration::ZERO).unwrap();
        let (err, _) = q
            .push_all(vec![entry(3), entry(2)], Duration::ZERO)
            .unwrap_err();
        assert!(
            err.to_string().contains("2 tokens waiting, limit 6"),
            "{err}"
        );
        assert_eq!((q.rows(), q.units()), (2, 2));
        q.push_all(vec![entry(3), entry(1)], Duration::ZERO)
            .unwrap();
        assert_eq!(q.units(), 6);
    }

    #[test]
    fn closed_queue_refuses() {
        let mut q = Queue::new("m", 100, None);
        q.close();
        let err = q.push(entry(1), Duration::ZERO).unwrap_err();
        assert!(matches!(err, SchedulerError::ShuttingDown { .. }));
    }

    #[test]
    fn retry_after_is_whole_seconds_within_bounds() {
        assert_eq!(retry_after(0, Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            retry_after(10_000, Duration::from_millis(1)),
            Duration::from_secs(10)
        );
        assert_eq!(
            retry_after(1 << 30, Duration::from_secs(1)),
            Duration::from_secs(60)
        );
    }
}
