//! Batch assembly: stack requests' rows into one tensor per input, and split the
//! batch's outputs back into each request's rows. Pure; property-tested below.

use crate::tensor::{element_count, Tensor, TensorData};

/// Why a batch could not be assembled or split. Both are server-side faults (the
/// requests were validated before they were queued), so callers answer 500.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BatchError {
    #[error("input {index}: requests disagree on type or non-batch shape")]
    Incompatible { index: usize },
    #[error("output {index}: first dimension {got} does not match the batch's {expected} rows")]
    NotBatched {
        index: usize,
        expected: usize,
        got: usize,
    },
}

/// Concatenates along axis 0: `requests[r][i]` is request r's tensor for input i.
/// All requests must agree on each input's type and rank; with `ragged`, non-batch
/// dimensions may differ and every tensor is zero-padded at the end of each dimension
/// to the largest in the batch (text: token ids and masks of different lengths),
/// otherwise they must agree too.
pub fn stack(requests: &[&[Tensor]], ragged: bool) -> Result<Vec<Tensor>, BatchError> {
    let Some(first) = requests.first() else {
        return Ok(vec![]);
    };
    if requests.len() == 1 {
        return Ok(first.to_vec());
    }
    if ragged {
        return stack_padded(requests);
    }
    let mut out = Vec::with_capacity(first.len());
    for (index, head) in first.iter().enumerate() {
        let mut rows = 0;
        let mut elements = 0;
        for r in requests {
            let t = r.get(index).ok_or(BatchError::Incompatible { index })?;
            if t.shape.get(1..) != head.shape.get(1..) || t.data.datatype() != head.data.datatype()
            {
                return Err(BatchError::Incompatible { index });
            }
            rows += t.rows();
            elements += t.data.len();
        }
        let mut data = TensorData::with_capacity(head.data.datatype(), elements);
        for r in requests {
            data.extend_from(&r[index].data);
        }
        let mut shape = head.shape.clone();
        if let Some(d0) = shape.first_mut() {
            *d0 = rows;
        }
        out.push(Tensor { shape, data });
    }
    Ok(out)
}

fn stack_padded(requests: &[&[Tensor]]) -> Result<Vec<Tensor>, BatchError> {
    let first = requests[0];
    let mut out = Vec::with_capacity(first.len());
    for (index, head) in first.iter().enumerate() {
        let rank = head.shape.len();
        let mut target = head.shape.clone();
        target[0] = 0;
        for r in requests {
            let t = r.get(index).ok_or(BatchError::Incompatible { index })?;
            if t.shape.len() != rank || t.data.datatype() != head.data.datatype() {
                return Err(BatchError::Incompatible { index });
            }
            target[0] += t.shape[0];
            for (slot, &d) in target.iter_mut().zip(&t.shape).skip(1) {
                *slot = (*slot).max(d);
            }
        }
        let total = element_count(&target).ok_or(BatchError::Incompatible { index })?;
        let mut data = TensorData::with_capacity(head.data.datatype(), total);
        for r in requests {
            pad_into(&mut data, &r[index], &target[1..]);
        }
        out.push(Tensor {
            shape: target,
            data,
        });
    }
    Ok(out)
}

/// Appends `t`'s rows to `out`, each zero-padded to the non-batch shape `inner`.
fn pad_into(out: &mut TensorData, t: &Tensor, inner: &[usize]) {
    if t.shape[1..] == *inner {
        out.extend_from(&t.data);
    } else {
        out.extend_padded(&t.data, t.shape[0], &t.shape[1..], inner);
    }
}

/// Splits each output along axis 0 into consecutive pieces of `rows[r]` rows, one per
/// request, in order. Returns `pieces[r][o]`: request r's tensor for output o.
pub fn split(outputs: Vec<Tensor>, rows: &[usize]) -> Result<Vec<Vec<Tensor>>, BatchError> {
    let total: usize = rows.iter().sum();
    let mut pieces: Vec<Vec<Tensor>> = rows
        .iter()
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for (index, out) in outputs.into_iter().enumerate() {
        let got = out.shape.first().copied().unwrap_or(0);
        let row_len = element_count(out.shape.get(1..).unwrap_or(&[])).unwrap_or(0);
        if out.shape.is_empty() || got != total || out.data.len() != total * row_len {
            return Err(BatchError::NotBatched {
                index,
                expected: total,
                got,
            });
        }
        if rows.len() == 1 {
            pieces[0].push(out);
            continue;
        }
        let mut start = 0;
        for (r, &n) in rows.iter().enumerate() {
            let mut shape = out.shape.clone();
            shape[0] = n;
            let data = out.data.slice(start * row_len..(start + n) * row_len);
            pieces[r].push(Tensor { shape, data });
            start += n;
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(rows: usize, width: usize, base: f32) -> Tensor {
        Tensor {
            shape: vec![rows, width],
            data: TensorData::F32((0..rows * width).map(|i| base + i as f32).collect()),
        }
    }

    #[test]
    fn stack_refuses_mixed_shapes() {
        let a = [t(1, 3, 0.0)];
        let b = [t(1, 4, 0.0)];
        assert_eq!(
            stack(&[&a[..], &b[..]], false),
            Err(BatchError::Incompatible { index: 0 })
        );
    }

    #[test]
    fn split_refuses_outputs_without_batch_dimension() {
        let out = vec![Tensor {
            shape: vec![3],
            data: TensorData::F32(vec![1.0, 2.0, 3.0]),
        }];
        assert!(matches!(
            split(out, &[1, 1]),
            Err(BatchError::NotBatched { .. })
        ));
    }

    #[test]
    fn ragged_stack_pads_each_row_with_zeros() {
        let ids = |v: Vec<i64>| Tensor {
            shape: vec![1, v.len()],
            data: TensorData::I64(v),
        };
        let a = [ids(vec![101, 7, 102])];
        let b = [ids(vec![101, 102])];
        let batch = stack(&[&a[..], &b[..]], true).unwrap();
        assert_eq!(batch[0].shape, vec![2, 3]);
        assert_eq!(
            batch[0].data,
            TensorData::I64(vec![101, 7, 102, 101, 102, 0])
        );
        // A 2-D inner shape pads in both dimensions, row-major.
        let m = |rows: usize, cols: usize| Tensor {
            shape: vec![1, rows, cols],
            data: TensorData::F32((0..rows * cols).map(|x| x as f32 + 1.0).collect()),
        };
        let batch = stack(&[&[m(1, 2)][..], &[m(2, 1)][..]], true).unwrap();
        assert_eq!(batch[0].shape, vec![2, 2, 2]);
        assert_eq!(
            batch[0].data,
            TensorData::F32(vec![1.0, 2.0, 0.0, 0.0, 1.0, 0.0, 2.0, 0.0])
        );
    }

    proptest! {
        /// split ∘ stack = id: nothing lost, duplicated or reordered, for any rows per
        /// request and any number of inputs.
        #[test]
        fn split_of_stack_is_identity(
            rows in proptest::collection::vec(1usize..6, 1..12),
            widths in proptest::collection::vec(1usize..5, 1..4),
        ) {
            let requests: Vec<Vec<Tensor>> = rows.iter().enumerate().map(|(r, &n)| {
                widths.iter().enumerate()
                    .map(|(i, &w)| t(n, w, (r * 1000 + i * 100) as f32))
                    .collect()
            }).collect();
            let refs: Vec<&[Tensor]> = requests.iter().map(|r| r.as_slice()).collect();
            let batch = stack(&refs, false).unwrap();
            let total: usize = rows.iter().sum();
            for b in &batch {
                prop_assert_eq!(b.shape[0], total);
            }
            let back = split(batch, &rows).unwrap();
            prop_assert_eq!(back, requests);
        }
    }
}
