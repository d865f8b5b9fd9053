//! The policy's rules, each on a hand-made queue and clock.

use super::*;

fn cfg(max: usize, delay_us: u64, preferred: &[usize]) -> BatchingConfig {
    BatchingConfig {
        max_batch_size: max,
        dynamic: max > 1,
        max_queue_delay: Duration::from_micros(delay_us),
        preferred_batch_sizes: preferred.to_vec(),
        ..BatchingConfig::default()
    }
}

fn decide<'a>(
    q: impl IntoIterator<Item = &'a Pending>,
    now: Instant,
    c: &BatchingConfig,
) -> Decision {
    with_cost(q, now, c, &BatchCost::default(), Duration::ZERO)
}

/// `decide` with a learned cost and device state, company assumed (the default).
fn with_cost<'a>(
    q: impl IntoIterator<Item = &'a Pending>,
    now: Instant,
    c: &BatchingConfig,
    cost: &BatchCost,
    ahead: Duration,
) -> Decision {
    super::decide(q, now, c, cost, ahead, &Company::default())
}

/// A request of `rows` rows and shape `[shape]` that arrived `at_us` after `t0`.
fn p(rows: usize, shape: usize, t0: Instant, at_us: u64) -> Pending {
    Pending {
        rows,
        units: rows * shape,
        shape: vec![shape].into_boxed_slice(),
        enqueued: t0 + Duration::from_micros(at_us),
        deadline: None,
        priority: 1,
    }
}

#[test]
fn empty_queue_is_idle() {
    let q: Vec<Pending> = vec![];
    assert_eq!(
        decide(&q, Instant::now(), &cfg(8, 100, &[])),
        Decision::Idle
    );
}

#[test]
fn waits_for_company_until_the_delay() {
    let t0 = Instant::now();
    let q = vec![p(1, 10, t0, 0), p(2, 10, t0, 30)];
    let c = cfg(8, 100, &[]);
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(40), &c),
        Decision::Wait(Duration::from_micros(60))
    );
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(100), &c),
        Decision::Dispatch(vec![0, 1])
    );
}

#[test]
fn dispatches_when_full_without_waiting() {
    let t0 = Instant::now();
    let q = vec![p(3, 10, t0, 0), p(5, 10, t0, 1), p(1, 10, t0, 2)];
    assert_eq!(
        decide(&q, t0, &cfg(8, 1_000_000, &[])),
        Decision::Dispatch(vec![0, 1])
    );
}

#[test]
fn dispatches_when_the_next_request_would_not_fit() {
    let t0 = Instant::now();
    let q = vec![p(3, 10, t0, 0), p(6, 10, t0, 1)];
    assert_eq!(
        decide(&q, t0, &cfg(8, 1_000_000, &[])),
        Decision::Dispatch(vec![0])
    );
}

#[test]
fn never_mixes_shapes_and_skips_over_others() {
    let t0 = Instant::now();
    let q = vec![p(1, 10, t0, 0), p(1, 7, t0, 1), p(1, 10, t0, 2)];
    let at = t0 + Duration::from_micros(500);
    assert_eq!(
        decide(&q, at, &cfg(8, 100, &[])),
        Decision::Dispatch(vec![0, 2])
    );
}

#[test]
fn preferred_size_dispatches_early() {
    let t0 = Instant::now();
    let q: Vec<Pending> = (0..4).map(|i| p(1, 10, t0, i)).collect();
    assert_eq!(
        decide(&q, t0, &cfg(16, 1_000_000, &[4])),
        Decision::Dispatch(vec![0, 1, 2, 3])
    );
    assert!(matches!(
        decide(&q, t0, &cfg(16, 1_000_000, &[8])),
        Decision::Wait(_)
    ));
}

#[test]
fn preferred_trims_to_an_exact_prefix() {
    let t0 = Instant::now();
    // 2 + 2 + 3 = 7 rows: the longest prefix on a preferred size (4) is taken.
    let q = vec![p(2, 10, t0, 0), p(2, 10, t0, 1), p(3, 10, t0, 2)];
    assert_eq!(
        decide(&q, t0, &cfg(16, 1_000_000, &[4, 6])),
        Decision::Dispatch(vec![0, 1])
    );
    // no prefix lands on 5: everything picked goes.
    let q = vec![p(2, 10, t0, 0), p(4, 10, t0, 1)];
    assert_eq!(
        decide(&q, t0, &cfg(16, 1_000_000, &[5])),
        Decision::Dispatch(vec![0, 1])
    );
}

#[test]
fn without_dynamic_batching_the_head_goes_alone() {
    let t0 = Instant::now();
    let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1)];
    assert_eq!(decide(&q, t0, &cfg(1, 0, &[])), Decision::Dispatch(vec![0]));
}

#[test]
fn zero_delay_dispatches_what_is_there() {
    let t0 = Instant::now();
    let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
    assert_eq!(
        decide(&q, t0, &cfg(8, 0, &[])),
        Decision::Dispatch(vec![0, 1])
    );
}

#[test]
fn higher_priority_batches_first() {
    let t0 = Instant::now();
    let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1), p(1, 10, t0, 2)];
    q[2].priority = 1;
    q[0].priority = 2;
    q[1].priority = 2;
    let mut c = cfg(2, 0, &[]);
    c.priority_levels = 2;
    c.priority_aging = Duration::from_secs(10);
    // The level-1 request leads; the oldest level-2 one fills the batch.
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(5), &c),
        Decision::Dispatch(vec![0, 2])
    );
}

#[test]
fn a_low_level_cannot_starve() {
    let t0 = Instant::now();
    // An old level-3 request and a stream of fresh level-1 ones, batches of one.
    let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 900), p(1, 10, t0, 950)];
    q[0].priority = 3;
    let mut c = cfg(1, 0, &[]);
    c.dynamic = false;
    c.priority_levels = 3;
    c.priority_aging = Duration::from_micros(500);
    // Before aging the fresh level-1 request goes first ...
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(400), &c),
        Decision::Dispatch(vec![1])
    );
    // ... after waiting `priority_aging` the old one outranks every level.
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(1000), &c),
        Decision::Dispatch(vec![0])
    );
}

#[test]
fn expired_requests_are_found_and_waits_stop_at_deadlines() {
    let t0 = Instant::now();
    let mut q = vec![p(1, 10, t0, 0), p(1, 10, t0, 1)];
    q[1].deadline = Some(t0 + Duration::from_micros(300));
    assert_eq!(
        expired(&q, t0 + Duration::from_micros(299)),
        Vec::<usize>::new()
    );
    assert_eq!(expired(&q, t0 + Duration::from_micros(300)), vec![1]);
    let c = cfg(8, 1000, &[]);
    // The window has 900 µs left, the deadline 200 µs: wake for the deadline.
    assert_eq!(
        decide(&q, t0 + Duration::from_micros(100), &c),
        Decision::Wait(Duration::from_micros(200))
    );
}

/// 1 ms fixed + 0.1 ms per unit, learned from batches of several sizes.
fn learned() -> BatchCost {
    let mut cost = BatchCost::default();
    for work in [10.0, 100.0, 640.0, 10.0, 100.0, 640.0] {
        cost.observe(work, Duration::from_secs_f64(1e-3 + 1e-4 * work));
    }
    cost
}

fn near(a: Duration, b: Duration) -> bool {
    (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-5
}

#[test]
fn latency_target_with_an_idle_device_waits_at_most_the_fixed_cost() {
    let t0 = Instant::now();
    let mut c = cfg(64, 0, &[]);
    c.latency_target = Some(Duration::from_millis(10));
    let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
    // Nothing learned yet: dispatch at once.
    assert_eq!(
        with_cost(&q, t0, &c, &BatchCost::default(), Duration::ZERO),
        Decision::Dispatch(vec![0, 1])
    );
    let cost = learned();
    // Idle device: the head may wait the fixed cost (1 ms) from its arrival, not the
    // 10 - 3 = 7 ms the target alone would allow.
    let d = with_cost(
        &q,
        t0 + Duration::from_micros(400),
        &c,
        &cost,
        Duration::ZERO,
    );
    let Decision::Wait(w) = d else {
        panic!("{d:?}")
    };
    assert!(near(w, Duration::from_micros(600)), "{w:?}");
    assert_eq!(
        with_cost(&q, t0 + Duration::from_millis(1), &c, &cost, Duration::ZERO),
        Decision::Dispatch(vec![0, 1])
    );
    // A cost that is all per unit: no reason to idle the device at all.
    let mut linear = BatchCost::default();
    for work in [10.0, 100.0, 640.0, 10.0, 100.0, 640.0] {
        linear.observe(work, Duration::from_secs_f64(1e-4 * work));
    }
    assert_eq!(
        with_cost(&q, t0, &c, &linear, Duration::ZERO),
        Decision::Dispatch(vec![0, 1])
    );
    // The target still caps the wait: with T = 3.5 ms and a 3 ms batch, 0.5 ms.
    c.latency_target = Some(Duration::from_micros(3500));
    let d = with_cost(&q, t0, &c, &cost, Duration::ZERO);
    let Decision::Wait(w) = d else {
        panic!("{d:?}")
    };
    assert!(near(w, Duration::from_micros(500)), "{w:?}");
}

#[test]
fn latency_target_with_an_idle_device_waits_only_where_company_comes() {
    let t0 = Instant::now();
    let mut c = cfg(64, 0, &[]);
    c.latency_target = Some(Duration::from_millis(10));
    let q = vec![p(1, 10, t0, 0)];
    let cost = learned();
    let mut alone = Company::default();
    for _ in 0..10 {
        alone.observe(false);
    }
    // Waits have not been catching anyone: the lone request goes at once...
    assert_eq!(
        super::decide(&q, t0, &c, &cost, Duration::ZERO, &alone),
        Decision::Dispatch(vec![0])
    );
    // ...while with company likely it waits the fixed cost (1 ms).
    let d = super::decide(&q, t0, &c, &cost, Duration::ZERO, &Company::default());
    let Decision::Wait(w) = d else {
        panic!("{d:?}")
    };
    assert!(near(w, Duration::from_millis(1)), "{w:?}");
    // Behind a busy device the batch still grows until the hand-over either way.
    assert_eq!(
        super::decide(&q, t0, &c, &cost, Duration::from_millis(4), &alone),
        Decision::Wait(Duration::from_millis(4) - HANDOVER)
    );
}

#[test]
fn latency_target_behind_a_busy_device_grows_until_the_hand_over() {
    let t0 = Instant::now();
    let mut c = cfg(64, 0, &[]);
    c.latency_target = Some(Duration::from_millis(10));
    let q = vec![p(1, 10, t0, 0), p(1, 10, t0, 0)];
    let cost = learned();
    // The running batch owes 4 ms: keep growing until 200 µs before it ends.
    let d = with_cost(&q, t0, &c, &cost, Duration::from_millis(4));
    assert_eq!(d, Decision::Wait(Duration::from_millis(4) - HANDOVER));
    // Even when the head's target is already out of reach (it waited 9 ms): leaving
    // now would not start it sooner.
    let d = with_cost(
        &q,
        t0 + Duration::from_millis(9),
        &c,
        &cost,
        Duration::from_millis(4),
    );
    assert_eq!(d, Decision::Wait(Duration::from_millis(4) - HANDOVER));
    // At the hand-over point the idle rule applies: the head waited past the fixed
    // cost, so it goes.
    assert_eq!(
        with_cost(&q, t0 + Duration::from_millis(4), &c, &cost, HANDOVER),
        Decision::Dispatch(vec![0, 1])
    );
    // Ten rows cost 1 + 10 ms: the fixed part is under 1/8, so growing would not
    // pay; the batch is handed over now, busy device or not.
    let ten: Vec<Pending> = (0..10).map(|_| p(1, 10, t0, 0)).collect();
    assert!(matches!(
        with_cost(&ten, t0, &c, &cost, Duration::from_millis(4)),
        Decision::Dispatch(v) if v.len() == 10
    ));
    // A full batch never waits for the device.
    let full: Vec<Pending> = (0..64).map(|_| p(1, 10, t0, 0)).collect();
    assert!(matches!(
        with_cost(&full, t0, &c, &cost, Duration::from_millis(4)),
        Decision::Dispatch(v) if v.len() == 64
    ));
    // A fixed window ignores the device: `ahead` changes nothing there.
    let fixed = cfg(64, 1000, &[]);
    assert_eq!(
        with_cost(&q, t0, &fixed, &cost, Duration::from_millis(4)),
        Decision::Wait(Duration::from_millis(1))
    );
}

#[test]
fn predicted_latency_drains_the_queue_in_full_batches() {
    // 1 ms per batch + 10 µs per unit.
    let fit = CostFit {
        fixed_seconds: 1e-3,
        per_unit_seconds: 1e-5,
        samples: 10,
    };
    let ms = |x: f64| Duration::from_secs_f64(x * 1e-3);
    let close = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()).abs() < 1e-9;
    // 20 rows of 100 units behind a worker free in 2 ms, batches of 8: 3 batches,
    // 3 ms fixed + 20 ms per unit.
    assert!(close(
        predicted_latency(&fit, ms(2.0), 20, 2000.0, 8, 1),
        ms(25.0)
    ));
    // Two workers drain it in half the time; the wait for the first one stays.
    assert!(close(
        predicted_latency(&fit, ms(2.0), 20, 2000.0, 8, 2),
        ms(13.5)
    ));
    // An empty queue: the request's own batch only.
    assert!(close(
        predicted_latency(&fit, Duration::ZERO, 1, 100.0, 8, 1),
        ms(2.0)
    ));
}
