//! The retry budget: documented defaults, draining under sustained failures, refilling on
//! successes, retries waiting in backoff holding their tokens (directly and through
//! `execute` with scripted failing ops on paused time), the distinct fail-fast error and its
//! metric event, and no overdraft under concurrent use.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::Events;
use mcp_resilience::budget::{BudgetConfig, EXHAUSTED_EVENT, RetryBudget};
use mcp_resilience::classify::FailureKind;
use mcp_resilience::{Backoff, Idempotency, RetryPolicy, Strategy};

#[test]
fn defaults_capacity_500_cost_5_timeout_cost_10_refund_1() {
    let budget = RetryBudget::new();
    assert_eq!(budget.available(), 500);
    assert_eq!(*budget.config(), BudgetConfig::default());
    assert_eq!(budget.config().cost_of(FailureKind::ServerError), 5);
    assert_eq!(budget.config().cost_of(FailureKind::Connect), 5);
    assert_eq!(budget.config().cost_of(FailureKind::Timeout), 10);
    let p = budget.try_reserve(FailureKind::Timeout).unwrap();
    assert_eq!(p.cost(), 10);
    drop(p);
    assert_eq!(budget.available(), 490);
    budget.record_success();
    assert_eq!(budget.available(), 491);
}

#[test]
fn sustained_failures_drain_the_bucket() {
    let budget = RetryBudget::new();
    let mut retries = 0;
    while let Ok(permit) = budget.try_reserve(FailureKind::ServerError) {
        drop(permit); // the retry failed: tokens spent
        retries += 1;
    }
    assert_eq!(retries, 100, "500 tokens / 5 per retry");
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
    let budget = BudgetConfig::new().capacity(10).build();
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    assert!(budget.try_reserve(FailureKind::ServerError).is_err());
    for _ in 0..5 {
        budget.record_success();
    }
    drop(
        budget
            .try_reserve(FailureKind::ServerError)
            .expect("five successes buy a retry"),
    );
    for _ in 0..100 {
        budget.record_success();
    }
    assert_eq!(budget.available(), 10, "never above capacity");
    // A retry that works returns its tokens.
    budget
        .try_reserve(FailureKind::Timeout)
        .unwrap()
        .succeeded();
    assert_eq!(budget.available(), 10);
}

#[test]
fn retries_waiting_in_backoff_hold_their_tokens() {
    let budget = BudgetConfig::new().capacity(10).build();
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
    assert_eq!(budget.available(), 5);
    drop(second);
    assert_eq!(budget.outstanding(), 0);
    assert_eq!(budget.available(), 5);
}

#[test]
fn exhaustion_fails_fast_with_a_distinct_error_and_a_metric_event() {
    let events = Events::default();
    let _guard = events.install();
    let budget = BudgetConfig::new().capacity(4).build();
    let err = budget.try_reserve(FailureKind::ServerError).unwrap_err();
    assert!(err.is_budget_exhausted());
    assert!(!err.is_retries_exhausted() && !err.is_circuit_open() && !err.is_not_retryable());
    let e = &events.named(EXHAUSTED_EVENT)[0];
    assert_eq!(e.name, "mcp_resilience.retry_budget.exhausted");
    assert_eq!(e.target, "mcp_resilience::budget");
    assert_eq!(e.level, tracing::Level::WARN);
    assert_eq!(e.field("cost"), "5");
    assert_eq!(e.field("available"), "4");
    assert_eq!(e.field("capacity"), "4");
    assert_eq!(e.field("outstanding"), "0");
}

#[test]
fn clones_share_one_bucket() {
    let budget = BudgetConfig::new().capacity(5).build();
    let clone = budget.clone();
    let permit = clone.try_reserve(FailureKind::Io).unwrap();
    assert_eq!(budget.available(), 0);
    assert_eq!(budget.outstanding(), 1);
    drop(permit);
}

#[test]
fn concurrent_reservations_never_overdraw() {
    let budget = BudgetConfig::new().capacity(5_000).build();
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
    let budget = BudgetConfig::new().capacity(10).build();
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
async fn execute_returns_tokens_of_a_retry_that_worked_and_refunds_first_try_successes() {
    let budget = BudgetConfig::new().capacity(20).build();
    drop(budget.try_reserve(FailureKind::ServerError).unwrap());
    assert_eq!(budget.available(), 15);
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
    assert_eq!(budget.available(), 15, "the retry's 5 tokens came back");
    policy
        .execute(Idempotency::Idempotent, |_| async {
            Ok::<_, std::io::Error>(())
        })
        .await
        .unwrap();
    assert_eq!(budget.available(), 16, "a first-try success refunds 1");
}
