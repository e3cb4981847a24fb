//! Backoff strategies with fixed seeds: every delay within its strategy's bounds, the cap and
//! the number of retries respected, the distributions roughly what the formulas promise,
//! and the same seed drawing the same delays.

use std::time::Duration;

use mcp_resilience::backoff::{Backoff, Strategy};

const ALL: [Strategy; 5] = [
    Strategy::FullJitter,
    Strategy::EqualJitter,
    Strategy::DecorrelatedJitter,
    Strategy::Exponential,
    Strategy::Constant,
];

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Mean of `n` draws of retry `retry`'s delay, in seconds.
fn mean(backoff: &Backoff, retry: u32, seed: u64, n: u32) -> f64 {
    let mut rng = fastrand::Rng::with_seed(seed);
    let total: f64 = (0..n)
        .map(|_| backoff.delay(retry, Duration::ZERO, &mut rng).as_secs_f64())
        .sum();
    total / f64::from(n)
}

#[test]
fn defaults_are_the_design_documents_with_full_jitter() {
    let b = Backoff::new();
    assert_eq!(b, Backoff::default());
    assert_eq!(b.retries_allowed(), 3);
    assert_eq!(b.max_delay(), Duration::from_secs(10));
    assert_eq!(b.ceiling(1), Duration::from_secs(1));
    assert_eq!(b.ceiling(4), Duration::from_secs(8));
    assert_eq!(b.ceiling(5), Duration::from_secs(10), "capped");
    assert_eq!(b, Backoff::new().strategy(Strategy::FullJitter));
    assert_eq!(b.delays(fastrand::Rng::with_seed(1)).count(), 3);
}

#[test]
fn full_jitter_is_uniform_between_zero_and_the_ceiling() {
    let b = Backoff::new();
    for seed in 0..50 {
        let mut rng = fastrand::Rng::with_seed(seed);
        for retry in 1..=8 {
            let d = b.delay(retry, Duration::ZERO, &mut rng);
            assert!(d <= b.ceiling(retry), "seed {seed} retry {retry}: {d:?}");
        }
    }
    // Mean of U(0, c) is c / 2: 0.5 s for the first retry, 5 s once capped.
    let m1 = mean(&b, 1, 7, 20_000);
    assert!((m1 - 0.5).abs() < 0.02, "{m1}");
    let m6 = mean(&b, 6, 7, 20_000);
    assert!((m6 - 5.0).abs() < 0.15, "{m6}");
    // Both ends of the range are reached: some draws under 5 % and some over 95 %.
    let mut rng = fastrand::Rng::with_seed(3);
    let draws: Vec<f64> = (0..2_000)
        .map(|_| b.delay(1, Duration::ZERO, &mut rng).as_secs_f64())
        .collect();
    assert!(draws.iter().any(|&d| d < 0.05) && draws.iter().any(|&d| d > 0.95));
}

#[test]
fn equal_jitter_never_goes_below_half_the_ceiling() {
    let b = Backoff::new().strategy(Strategy::EqualJitter);
    for seed in 0..50 {
        let mut rng = fastrand::Rng::with_seed(seed);
        for retry in 1..=8 {
            let c = b.ceiling(retry);
            let d = b.delay(retry, Duration::ZERO, &mut rng);
            assert!(
                d >= c / 2 && d <= c,
                "seed {seed} retry {retry}: {d:?} vs {c:?}"
            );
        }
    }
    // Mean of U(c/2, c) is 3c/4.
    let m = mean(&b, 2, 11, 20_000);
    assert!((m - 1.5).abs() < 0.03, "{m}");
}

#[test]
fn decorrelated_jitter_grows_from_the_previous_delay_within_base_and_cap() {
    let b = Backoff::new().strategy(Strategy::DecorrelatedJitter);
    for seed in 0..50 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut previous = Duration::ZERO;
        for retry in 1..=20 {
            let d = b.delay(retry, previous, &mut rng);
            let high = previous.max(secs(1.0)).saturating_mul(3).min(b.max_delay());
            assert!(
                d >= secs(1.0) && d <= high,
                "seed {seed} retry {retry}: {d:?}"
            );
            previous = d;
        }
    }
    // From a long previous delay the draw is capped.
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..100 {
        assert!(b.delay(9, Duration::from_secs(60), &mut rng) <= Duration::from_secs(10));
    }
    // The first draw is uniform in [base, 3 base]: mean 2 base.
    let m = mean(&b, 1, 13, 20_000);
    assert!((m - 2.0).abs() < 0.03, "{m}");
}

#[test]
fn exponential_doubles_up_to_the_cap_without_jitter() {
    let b = Backoff::new()
        .strategy(Strategy::Exponential)
        .max_retries(6);
    let delays: Vec<Duration> = b.delays(fastrand::Rng::with_seed(0)).collect();
    assert_eq!(delays, [1, 2, 4, 8, 10, 10].map(Duration::from_secs));
}

#[test]
fn constant_is_the_base_every_time() {
    let b = Backoff::new()
        .strategy(Strategy::Constant)
        .base(Duration::from_millis(250))
        .max_retries(4);
    let delays: Vec<Duration> = b.delays(fastrand::Rng::with_seed(0)).collect();
    assert_eq!(delays, [Duration::from_millis(250); 4]);
}

#[test]
fn every_strategy_respects_the_cap_and_the_retry_count() {
    for strategy in ALL {
        for retries in [0, 1, 3, 10] {
            let b = Backoff::new()
                .strategy(strategy)
                .base(Duration::from_millis(100))
                .cap(Duration::from_millis(700))
                .max_retries(retries);
            let delays: Vec<Duration> = b.delays(fastrand::Rng::with_seed(9)).collect();
            assert_eq!(delays.len(), retries as usize, "{strategy:?}");
            assert!(
                delays.iter().all(|d| *d <= Duration::from_millis(700)),
                "{strategy:?}: {delays:?}"
            );
        }
        // Huge retry numbers and previous delays saturate instead of overflowing.
        let b = Backoff::new().strategy(strategy).cap(Duration::MAX);
        let mut rng = fastrand::Rng::with_seed(1);
        let d = b.delay(u32::MAX, Duration::MAX, &mut rng);
        assert!(d <= Duration::from_nanos(u64::MAX), "{strategy:?}");
    }
}

#[test]
fn same_seed_same_delays_for_every_strategy() {
    for strategy in ALL {
        let b = Backoff::new().strategy(strategy).max_retries(8);
        let one: Vec<Duration> = b.delays(fastrand::Rng::with_seed(42)).collect();
        let two: Vec<Duration> = b.delays(fastrand::Rng::with_seed(42)).collect();
        assert_eq!(one, two, "{strategy:?}");
    }
    // Jittered strategies differ between seeds.
    let b = Backoff::new().max_retries(8);
    let one: Vec<Duration> = b.delays(fastrand::Rng::with_seed(1)).collect();
    let two: Vec<Duration> = b.delays(fastrand::Rng::with_seed(2)).collect();
    assert_ne!(one, two);
}

#[test]
fn zero_base_means_no_wait() {
    for strategy in ALL {
        let b = Backoff::new()
            .strategy(strategy)
            .base(Duration::ZERO)
            .cap(Duration::ZERO);
        assert!(
            b.delays(fastrand::Rng::with_seed(0))
                .all(|d| d == Duration::ZERO),
            "{strategy:?}"
        );
    }
}
