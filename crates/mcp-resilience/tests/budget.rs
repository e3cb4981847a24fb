//! The retry budget: documented defaults, draining under sustained failures, refilling on
//! successes, the long-run bound of one retry per ten successes, free conflicts, retries
//! waiting in backoff holding their tokens (directly and through `execute` with scripted
//! failing ops on paused time), the distinct fail-fast error and its metric event, and no
//! overdraft under concurrent use.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::Events;
use mcp_resilience::budget::{BudgetConfig, EXHAUSTED_EVENT, RetryBudget};
use mcp_resilience::classify::FailureKind;
use mcp_resilience::{Backoff, Idempotency, RetryPolicy, Strategy};

#[test]
fn defaults_capacity_1000_cost_10_timeout_cost_20_conflict_free_refund_1() {
    let budget = RetryBudget::new();
    assert_eq!(budget.available(), 1000);
    assert_eq!(*budget.config(), BudgetConfig::default());
    assert_eq!(budget.config().cost_of(FailureKind::ServerError), 10);
    assert_eq!(budget.config().cost_of(FailureKind::Connect), 10);
    assert_eq!(budget.config().cost_of(FailureKind::Throttled), 10);
    assert_eq!(budget.config().cost_of(FailureKind::Timeout), 20);
    assert_eq!(budget.config().cost_of(FailureKind::Conflict), 0);
    let p = budget.try_reserve(FailureKind::Timeout).unwrap();
    assert_eq!(p.cost(), 20);
    drop(p);
    assert_eq!(budget.available(), 980);
    budget.record_success();
    assert_eq!(budget.available(), 981);
}

#[test]
fn conflicts_cost_nothing_but_count_as_outstanding() {
    let budget = BudgetConfig::new().capacity(0).build();
    let permits: Vec<_> = (0..1_000)
        .map(|_| budget.try_reserve(FailureKind::Conflict).unwrap())
        .collect();
    assert_eq!(budget.outstanding(), 1_000);
    drop(permits);
    assert_eq!(budget.outstanding(), 0);
}

/// The budget's promise: whatever the failure rate, retries stay below one per ten successful
/// calls plus the 100 a full bucket pays for (gRPC A6's token ratio).
#[test]
fn retries_stay_below_a_tenth_of_successes_plus_the_burst_at_any_failure_rate() {
    for failure_percent in [5u32, 20, 50, 90] {
        let budget = RetryBudget::new();
        let mut rng = fastrand::Rng::with_seed(u64::from(failure_percent));
        let fails = |rng: &mut fastrand::Rng| rng.u32(0..100) < failure_percent;
        let (mut successes, mut retries, mut refused) = (0u32, 0u32, 0u32);
        for _ in 0..100_000 {
            if !fails(&mut rng) {
                budget.record_success();
                successes += 1;
                continue;
            }
            // One retry per failed call at most, as often as the budget allows.
            match budget.try_reserve(FailureKind::ServerError) {
                Ok(permit) => {
                    retries += 1;
                    if fails(&mut rng) {
                        drop(permit);
                    } else {
                        permit.succeeded();
                        successes += 1;
                    }
                }
                Err(_) => refused += 1,
            }
        }
        assert!(
            retries <= successes / 10 + 100,
            "{failure_percent}% failures: {retries} retries for {successes} successes"
        );
        if failure_percent == 5 {
            assert_eq!(refused, 0, "a healthy client never meets the budget");
        }
    }
}

#[test]
fn sustained_failures_drain_the_bucket() {
    let budget = RetryBudget::new();
    let mut retries = 0;
    while let Ok(permit) = budget.try_reserve(FailureKind::ServerError) {
        drop(permit); // the retry failed: tokens spent
        retries += 1;
    }
    assert_eq!(retries, 100, "1000 tokens / 10 per retry");
    assert_eq!(budget.available(), 0);

    let budget = RetryBudget::new();
    let mut retries = 0;
    while let Ok(permit) = budget.try_reserve(FailureKind::Timeout) {
        drop(permit);
        retries += 1;
    }
    assert_eq!(retries, 50, "timeouts cost twice as much");
}

#[test]
fn successes_refill_the_bucket_up_to_capacity() {
    let budget = BudgetConfig::new().capacity(20).build();
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    assert!(budget.try_reserve(FailureKind::ServerError).is_err());
    for _ in 0..10 {
        budget.record_success();
    }
    drop(
        budget
            .try_reserve(FailureKind::ServerError)
            .expect("ten successes buy a retry"),
    );
    for _ in 0..100 {
        budget.record_success();
    }
    assert_eq!(budget.available(), 20, "never above capacity");
    // A retry that works earns the refund like any success; its cost stays spent.
    budget
        .try_reserve(FailureKind::Timeout)
        .unwrap()
        .succeeded();
    assert_eq!(budget.available(), 1);
}

#[test]
fn retries_waiting_in_backoff_hold_their_tokens() {
    let budget = BudgetConfig::new().capacity(20).build();
    let first = budget.try_reserve(FailureKind::ServerError).unwrap();
    let second = budget.try_reserve(FailureKind::ServerError).unwrap();
    assert_eq!(budget.outstanding(), 2);
    // Nothing was sent yet, but both retries are scheduled: no room for a third.
    assert!(
        budget
            .try_reserve(FailureKind::ServerError)
            .unwrap_err()
            .is_budget_exhausted()
    );
    first.succeeded();
    assert_eq!(budget.outstanding(), 1);
    assert_eq!(budget.available(), 1);
    drop(second);
    assert_eq!(budget.outstanding(), 0);
    assert_eq!(budget.available(), 1);
}

#[test]
fn exhaustion_fails_fast_with_a_distinct_error_and_a_metric_event() {
    let events = Events::default();
    let _guard = events.install();
    let budget = BudgetConfig::new().capacity(9).build();
    let err = budget.try_reserve(FailureKind::ServerError).unwrap_err();
    assert!(err.is_budget_exhausted());
    assert!(!err.is_retries_exhausted() && !err.is_circuit_open() && !err.is_not_retryable());
    let e = &events.named(EXHAUSTED_EVENT)[0];
    assert_eq!(e.name, "mcp_resilience.retry_budget.exhausted");
    assert_eq!(e.target, "mcp_resilience::budget");
    assert_eq!(e.level, tracing::Level::WARN);
    assert_eq!(e.field("cost"), "10");
    assert_eq!(e.field("available"), "9");
    assert_eq!(e.field("capacity"), "9");
    assert_eq!(e.field("outstanding"), "0");
}

#[test]
fn clones_share_one_bucket() {
    let budget = BudgetConfig::new().capacity(10).build();
    let clone = budget.clone();
    let permit = clone.try_reserve(FailureKind::Io).unwrap();
    assert_eq!(budget.available(), 0);
    assert_eq!(budget.outstanding(), 1);
    drop(permit);
}

#[test]
fn concurrent_reservations_never_overdraw() {
    let budget = BudgetConfig::new().capacity(10_000).build();
    let granted = Arc::new(AtomicU32::new(0));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (budget, granted) = (budget.clone(), granted.clone());
            s.spawn(move || {
                for _ in 0..1_000 {
                    if let Ok(p) = budget.try_reserve(FailureKind::ServerError) {
                        granted.fetch_add(1, Ordering::Relaxed);
                        drop(p);
                    }
                }
            });
        }
    });
    assert_eq!(granted.load(Ordering::Relaxed), 1_000);
    assert_eq!(budget.available(), 0);
    assert_eq!(budget.outstanding(), 0);
}

/// A policy whose retries wait 5 s each, on `budget`.
fn waiting_policy(budget: &RetryBudget) -> RetryPolicy {
    RetryPolicy::new()
        .backoff(
            Backoff::new()
                .strategy(Strategy::Constant)
                .base(Duration::from_secs(5)),
        )
        .budget(Some(budget.clone()))
}

fn reset() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset)
}

#[tokio::test(start_paused = true)]
async fn execute_counts_calls_waiting_in_backoff_against_the_budget() {
    let budget = BudgetConfig::new().capacity(20).build();
    let calls = Arc::new(AtomicU32::new(0));
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (policy, calls) = (waiting_policy(&budget), calls.clone());
        waiting.push(tokio::spawn(async move {
            policy
                .execute(Idempotency::Idempotent, |_| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Err::<(), _>(reset()) }
                })
                .await
        }));
    }
    // Let both fail once and enter their 5 s backoff.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        budget.outstanding(),
        2,
        "both retries hold tokens while they wait"
    );
    assert_eq!(budget.available(), 0);

    // A third call fails its first attempt and cannot schedule a retry: it fails at once.
    let start = tokio::time::Instant::now();
    let err = waiting_policy(&budget)
        .execute(Idempotency::Idempotent, |_| async { Err::<(), _>(reset()) })
        .await
        .unwrap_err();
    assert!(err.is_budget_exhausted(), "{err:?}");
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(start.elapsed(), Duration::ZERO, "failed fast, no backoff");
    for w in waiting {
        let err = w.await.unwrap().unwrap_err();
        assert!(err.is_budget_exhausted(), "{err:?}");
        assert_eq!(err.attempts(), Some(2));
    }
}

#[tokio::test(start_paused = true)]
async fn execute_refunds_every_successful_call_and_spends_the_cost_of_retries() {
    let budget = BudgetConfig::new().capacity(40).build();
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    assert_eq!(budget.available(), 30);
    let policy = waiting_policy(&budget);
    let got = policy
        .execute(Idempotency::Idempotent, |attempt| async move {
            if attempt.number() == 1 {
                Err(reset())
            } else {
                Ok(attempt.number())
            }
        })
        .await
        .unwrap();
    assert_eq!(got, 2);
    assert_eq!(
        budget.available(),
        21,
        "the retry cost 10, its success earned 1"
    );
    policy
        .execute(Idempotency::Idempotent, |_| async {
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    assert_eq!(budget.available(), 22, "a first-try success refunds 1");
}
