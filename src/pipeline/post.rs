//! Post-processing: mean pooling + L2 normalisation for embeddings, softmax and top-k
//! with labels for classifiers. Pure functions over slices.

/// Mean of the rows of `hidden` ([tokens, dim], row-major) whose `mask` is non-zero,
/// then scaled to unit length. Rows beyond `mask.len()` (batch padding) are ignored.
pub fn mean_pool_normalized(hidden: &[f32], dim: usize, mask: &[i64]) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut count = 0f32;
    for (t, &m) in mask.iter().enumerate() {
        if m == 0 {
            continue;
        }
        let Some(row) = hidden.get(t * dim..(t + 1) * dim) else {
            break;
        };
        for (s, &x) in sum.iter_mut().zip(row) {
            *s += x;
        }
        count += 1.0;
    }
    if count > 0.0 {
        for s in &mut sum {
            *s /= count;
        }
    }
    l2_normalize(&mut sum);
    sum
}

/// Scales `v` to unit Euclidean length (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Numerically stable softmax.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// The `k` largest scores as (index, score), best first; ties keep the lower index.
pub fn top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    // Best first, ties by index: select the k best in O(n), then sort only those.
    let order = |&a: &usize, &b: &usize| scores[b].total_cmp(&scores[a]).then(a.cmp(&b));
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    if k == 0 {
        return Vec::new();
    }
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx.into_iter().map(|i| (i, scores[i])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_ignores_masked_and_padded_tokens() {
        // 3 tokens of dim 2; the last is masked out.
        let hidden = [1.0, 0.0, 3.0, 0.0, 100.0, 100.0];
        let v = mean_pool_normalized(&hidden, 2, &[1, 1, 0]);
        assert_eq!(v, vec![1.0, 0.0]);
        // The same text padded inside a longer batch pools to the same vector.
        let padded = [1.0, 0.0, 3.0, 0.0, 7.0, 7.0, 9.0, 9.0];
        assert_eq!(mean_pool_normalized(&padded, 2, &[1, 1]), v);
        let v = mean_pool_normalized(&[3.0, 4.0], 2, &[1]);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && p[2] < 1e-30);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn top_k_orders_best_first() {
        assert_eq!(
            top_k(&[0.1, 0.7, 0.2, 0.7], 3),
            vec![(1, 0.7), (3, 0.7), (2, 0.2)]
        );
        assert_eq!(top_k(&[0.5], 5), vec![(0, 0.5)]);
        assert_eq!(top_k(&[0.5, 0.9], 0), vec![]);
        // Against a full sort, on 1000 scores with many ties.
        let scores: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 97) as f32).collect();
        let mut all: Vec<usize> = (0..scores.len()).collect();
        all.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        for k in [1, 5, 97, 999, 1000] {
            let want: Vec<(usize, f32)> = all[..k].iter().map(|&i| (i, scores[i])).collect();
            assert_eq!(top_k(&scores, k), want, "k={k}");
        }
    }
}
