use tokio::sync::oneshot::Receiver;

use super::*;
use crate::backend::BackendError;
use crate::batching::Reply;
use crate::tensor::{Tensor, TensorData};

/// Doubles every input element; fails on a batch holding a negative element and
/// panics on NaN — to show one bad request takes down neither the worker nor its
/// batch mates.
struct Doubler;

impl Backend for Doubler {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        let t = &inputs[0];
        let TensorData::F32(v) = &t.data else {
            return Err(BackendError::Run("want FP32".into()));
        };
        if v.iter().any(|x| x.is_nan()) {
            panic!("NaN");
        }
        if v.iter().any(|&x| x < 0.0) {
            return Err(BackendError::Run("negative".into()));
        }
        Ok(vec![Tensor {
            shape: t.shape.clone(),
            data: TensorData::F32(v.iter().map(|x| x * 2.0).collect()),
        }])
    }
}

fn cfg(max: usize, delay_ms: u64) -> BatchingConfig {
    BatchingConfig {
        max_batch_size: max,
        dynamic: true,
        max_queue_delay: Duration::from_millis(delay_ms),
        max_queue_rows: 1000,
        ..BatchingConfig::default()
    }
}

fn request(
    b: &Batcher,
    value: f32,
) -> tokio::sync::oneshot::Receiver<Result<Reply, SchedulerError>> {
    let t = Tensor {
        shape: vec![1, 2],
        data: TensorData::F32(vec![value, value + 0.5]),
    };
    let (entry, rx) = Entry::new(vec![t], 1, vec![2].into_boxed_slice());
    b.submit(entry).unwrap();
    rx
}

#[tokio::test]
async fn concurrent_requests_share_batches_and_get_their_own_rows() {
    // The eighth request fills the batch, which then leaves at once: the 10 s window
    // only makes sure no earlier batch leaves, however slowly the requests come.
    let b = Batcher::start("m", cfg(8, 10_000), vec![Doubler]);
    let rxs: Vec<_> = (0..8).map(|i| request(&b, i as f32)).collect();
    for (i, rx) in rxs.into_iter().enumerate() {
        let reply = rx.await.unwrap().unwrap();
        let x = i as f32;
        assert_eq!(
            reply.outputs[0].data,
            TensorData::F32(vec![2.0 * x, 2.0 * x + 1.0])
        );
        assert_eq!(reply.batch_rows, 8);
    }
    assert_eq!(b.stats().snapshot().execution_count, 1);
}

#[tokio::test]
async fn a_failing_or_panicking_batch_fails_alone() {
    let b = Batcher::start("m", cfg(1, 0), vec![Doubler]);
    let bad = request(&b, -1.0);
    assert_eq!(bad.await.unwrap().unwrap_err(), SchedulerError::Internal);
    let boom = request(&b, f32::NAN);
    assert_eq!(boom.await.unwrap().unwrap_err(), SchedulerError::Internal);
    let good = request(&b, 1.0).await.unwrap().unwrap();
    assert_eq!(good.outputs[0].data, TensorData::F32(vec![2.0, 3.0]));
}

#[tokio::test]
async fn a_poisoned_request_fails_alone_and_its_batch_mates_are_answered() {
    // Batches of 3 and a 10 s window: the three leave together, as one full batch,
    // however slowly they come; the negative one makes that batch fail.
    let b = Batcher::start("m", cfg(3, 10_000), vec![Doubler]);
    let good1 = request(&b, 1.0);
    let bad = request(&b, -5.0);
    let good2 = request(&b, 2.0);
    let good1 = good1.await.unwrap().unwrap();
    assert_eq!(good1.outputs[0].data, TensorData::F32(vec![2.0, 3.0]));
    assert_eq!(bad.await.unwrap().unwrap_err(), SchedulerError::Internal);
    let good2 = good2.await.unwrap().unwrap();
    assert_eq!(good2.outputs[0].data, TensorData::F32(vec![4.0, 5.0]));
    // They did share the batch that failed (the statistics count batches, not the
    // requests rerun alone), and the mates were answered from their runs alone.
    let s = b.stats().snapshot();
    assert_eq!(s.execution_count, 1);
    assert_eq!(s.batch_sizes.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!((good1.batch_rows, good2.batch_rows), (1, 1));
}

#[tokio::test]
async fn shutdown_drains_then_refuses() {
    let b = Batcher::start("m", cfg(8, 10_000), vec![Doubler]);
    let rx = request(&b, 3.0);
    b.shutdown();
    // Queued before shutdown: still answered, without waiting out the 10 s delay.
    let reply = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.outputs[0].data, TensorData::F32(vec![6.0, 7.0]));
    let t = Tensor {
        shape: vec![1, 2],
        data: TensorData::F32(vec![0.0, 0.0]),
    };
    let (entry, _rx) = Entry::new(vec![t], 1, vec![2].into_boxed_slice());
    assert!(matches!(
        b.submit(entry),
        Err(SchedulerError::ShuttingDown { .. })
    ));
}

#[tokio::test]
async fn entries_whose_client_left_are_dropped_and_counted() {
    // Batches of 2 and a 10 s window: both are taken for one batch, whose assembly
    // drops the one whose client left.
    let b = Batcher::start("m", cfg(2, 10_000), vec![Doubler]);
    let gone = request(&b, 1.0);
    drop(gone);
    let kept = request(&b, 2.0);
    let reply = kept.await.unwrap().unwrap();
    assert_eq!(reply.batch_rows, 1);
    let s = b.stats().snapshot();
    assert_eq!(
        (s.cancelled, s.execution_count, s.inference_count),
        (1, 1, 1)
    );
}

/// 3 ms per batch whatever its size: all fixed cost, the case where an idle worker's
/// wait for company could pay.
struct Fixed3ms;

impl Backend for Fixed3ms {
    fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, BackendError> {
        std::thread::sleep(Duration::from_millis(3));
        Ok(inputs.to_vec())
    }
}

/// Submits a request of `rows` rows of width 2.
fn submit_rows(
    b: &Batcher,
    rows: usize,
) -> Result<tokio::sync::oneshot::Receiver<Result<Reply, SchedulerError>>, SchedulerError> {
    let t = Tensor {
        shape: vec![rows, 2],
        data: TensorData::F32(vec![1.0; rows * 2]),
    };
    let (entry, rx) = Entry::new(vec![t], rows, vec![2].into_boxed_slice());
    b.submit(entry).map(|()| rx)
}

#[tokio::test]
async fn a_lone_client_stops_waiting_for_company() {
    let cfg = BatchingConfig {
        latency_target: Some(Duration::from_millis(100)),
        ..cfg(8, 0)
    };
    let b = Batcher::start("m", cfg, vec![Fixed3ms]);
    let send = |rows: usize| submit_rows(&b, rows).unwrap();
    // One request at a time, as a client that waits for each answer and takes 2 ms
    // to use it. Sizes 1 and 4 first, so the cost line learns its 3 ms fixed part.
    // (Without the 2 ms the next request arrives right as the fixed cost since the
    // last one's arrival runs out, and scheduling jitter on a loaded machine decides
    // whether it counts as company.) How long each request waited is checked by
    // `dispatch`'s test on a hand-made clock, where the machine's load cannot decide
    // it; what the real threads must show is what they learned.
    for i in 0..30 {
        let rows = if i < 6 && i % 2 == 1 { 4 } else { 1 };
        send(rows).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(b.cost().is_some());
    let (share, samples) = b.company();
    assert!(
        share < crate::batching::company::LIKELY,
        "share {share}, {samples} samples"
    );
    assert!(samples >= 7, "{samples} samples");
}

#[tokio::test]
async fn shedding_refuses_what_would_finish_past_the_target() {
    // Sized so that the outcome does not hang on how loaded the machine is: a batch
    // takes 3 ms or more, so the burst's tail (100 rows in batches of 2: 150 ms or more)
    // is past the 100 ms target however fast the device, while its head (a few ms) is
    // inside it unless a 3 ms sleep takes over 30.
    let burst = |shed: bool| async move {
        let cfg = BatchingConfig {
            latency_target: Some(Duration::from_millis(100)),
            shed_beyond_target: shed,
            ..cfg(2, 0)
        };
        let b = Batcher::start("m", cfg, vec![Fixed3ms]);
        let send = |rows: usize| submit_rows(&b, rows);
        // Learn the cost first (3 ms a batch, 1 or 2 rows), one request at a time.
        for i in 0..6 {
            send(1 + i % 2).unwrap().await.unwrap().unwrap();
        }
        let (mut admitted, mut refused) = (vec![], vec![]);
        for _ in 0..100 {
            match send(1) {
                Ok(rx) => admitted.push(rx),
                Err(e) => refused.push(e),
            }
        }
        for rx in admitted.iter_mut() {
            rx.await.unwrap().unwrap();
        }
        let counts = b.shedding();
        assert_eq!(counts.shed, refused.len() as u64);
        // Every admitted request of the burst taught the margin (so did the learning
        // requests sent once the first batch had been costed); without shedding
        // nothing is predicted, so nothing is learned.
        if shed {
            assert!(counts.samples >= admitted.len() as u64, "{counts:?}");
        } else {
            assert_eq!(counts.samples, 0);
        }
        (admitted.len(), refused)
    };
    let (admitted, refused) = burst(true).await;
    assert!((1..100).contains(&admitted), "{admitted} admitted");
    assert_eq!(admitted + refused.len(), 100);
    for e in &refused {
        let SchedulerError::BeyondTarget {
            predicted_ms,
            target_ms,
            retry_after,
            ..
        } = e
        else {
            panic!("{e:?}")
        };
        assert!(*predicted_ms >= *target_ms, "{e:?}");
        assert_eq!(*retry_after, Duration::from_secs(1));
    }
    // Without shedding the same burst is queued whole (the queue holds 1000 rows).
    let (admitted, refused) = burst(false).await;
    assert_eq!((admitted, refused.len()), (100, 0));
}

/// `n` single-row requests' entries (values `value`, `value + 1`, ...) and their
/// receivers.
fn entries(n: usize, value: f32) -> (Vec<Entry>, Vec<Receiver<Result<Reply, SchedulerError>>>) {
    (0..n)
        .map(|i| {
            let x = value + i as f32;
            let t = Tensor {
                shape: vec![1, 2],
                data: TensorData::F32(vec![x, x + 0.5]),
            };
            Entry::new(vec![t], 1, vec![2].into_boxed_slice())
        })
        .unzip()
}

#[tokio::test]
async fn a_request_that_does_not_fit_is_refused_whole_and_queues_nothing() {
    // Room for 4 rows; the 10 s window keeps what is admitted waiting.
    let cfg = BatchingConfig {
        max_queue_rows: 4,
        ..cfg(8, 10_000)
    };
    let b = Batcher::start("m", cfg, vec![Doubler]);
    let (first, first_rx) = entries(2, 1.0);
    b.submit_all(first).unwrap();
    assert_eq!(b.queued_rows(), 2);
    // Three rows where two are free: refused as a whole, though two of them would fit.
    let (big, big_rx) = entries(3, 10.0);
    let err = b.submit_all(big).unwrap_err();
    assert!(
        matches!(
            err,
            SchedulerError::QueueFull {
                queued: 2,
                limit: 4,
                unit: "rows",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(b.queued_rows(), 2);
    for rx in big_rx {
        assert!(rx.await.is_err(), "a refused entry was queued");
    }
    // Two rows fit: admitted.
    let (small, small_rx) = entries(2, 3.0);
    b.submit_all(small).unwrap();
    assert_eq!(b.queued_rows(), 4);
    // Drained at shutdown: one batch, of exactly the four admitted rows.
    b.shutdown();
    for (rx, x) in first_rx
        .into_iter()
        .chain(small_rx)
        .zip([1.0, 2.0, 3.0, 4.0])
    {
        let reply = rx.await.unwrap().unwrap();
        assert_eq!(
            reply.outputs[0].data,
            TensorData::F32(vec![2.0 * x, 2.0 * x + 1.0])
        );
        assert_eq!(reply.batch_rows, 4);
    }
    let s = b.stats().snapshot();
    assert_eq!((s.execution_count, s.inference_count), (1, 4));
}

#[tokio::test]
async fn shedding_judges_a_multi_entry_request_as_a_whole() {
    let cfg = BatchingConfig {
        latency_target: Some(Duration::from_millis(100)),
        shed_beyond_target: true,
        ..cfg(2, 0)
    };
    let b = Batcher::start("m", cfg, vec![Fixed3ms]);
    // Learn the cost first (3 ms a batch, 1 or 2 rows), one request at a time.
    for i in 0..6 {
        submit_rows(&b, 1 + i % 2).unwrap().await.unwrap().unwrap();
    }
    let before = b.stats().snapshot();
    let learned = b.shedding();
    // 80 rows in batches of 2 at 3 ms or more each: at least 120 ms, past the 100 ms
    // target, though its first entries alone would finish well inside it.
    let (big, big_rx) = entries(80, 0.0);
    let err = b.submit_all(big).unwrap_err();
    assert!(
        matches!(err, SchedulerError::BeyondTarget { .. }),
        "{err:?}"
    );
    assert_eq!(b.queued_rows(), 0);
    for rx in big_rx {
        assert!(rx.await.is_err(), "a refused entry was queued");
    }
    // Two rows: admitted, each entry on its own estimate.
    let (small, small_rx) = entries(2, 0.0);
    b.submit_all(small).unwrap();
    for rx in small_rx {
        rx.await.unwrap().unwrap();
    }
    let after = b.stats().snapshot();
    // Only the two admitted rows reached the device; one refusal was counted.
    assert_eq!(after.inference_count - before.inference_count, 2);
    assert_eq!(after.shed - before.shed, 1);
    let counts = b.shedding();
    assert_eq!(counts.shed, 1);
    assert_eq!(counts.samples - learned.samples, 2);
}
