//! `RetryPolicy::execute` around scripted operations on paused tokio time: retries and their
//! waits, the overall deadline and the per-attempt timeout, the idempotency rule (a
//! non-idempotent call is retried only when nothing was processed), the idempotency key on
//! every attempt, `Retry-After`, values judged as failures, the breaker and the budget in
//! the loop, reproducible jitter, nested policies and the retry events.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

mod common;

use std::error::Error as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Events;
use http::Response;
use mcp_resilience::breaker::{BreakerConfig, BreakerState, CircuitBreaker};
use mcp_resilience::classify::{HttpClassifier, ToolCallClassifier};
use mcp_resilience::retry::{Attempt, Idempotency, IdempotencyKey, RetryPolicy};
use mcp_resilience::{Backoff, BoxError, Strategy};
use mcp_transport::CallToolResult;
use tokio::time::Instant;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Exact waits: 1 s, 2 s, 4 s.
fn exact() -> RetryPolicy {
    RetryPolicy::new().backoff(Backoff::new().strategy(Strategy::Exponential))
}

fn io(kind: std::io::ErrorKind) -> std::io::Error {
    std::io::Error::from(kind)
}

use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, InvalidInput};

/// A scripted operation: attempt `n` gets `script[n - 1]` (the last entry repeats), and
/// every attempt is logged with its number, start time and key.
#[derive(Clone, Default)]
struct Script {
    log: Arc<Mutex<Vec<Logged>>>,
}

/// An attempt's number, start time and key.
type Logged = (u32, Instant, Option<IdempotencyKey>);

impl Script {
    fn run(
        &self,
        script: &'static [Result<u32, std::io::ErrorKind>],
    ) -> impl FnMut(Attempt) -> std::future::Ready<Result<u32, std::io::Error>> + use<> {
        let log = self.log.clone();
        move |attempt: Attempt| {
            log.lock().unwrap().push((
                attempt.number(),
                Instant::now(),
                attempt.idempotency_key().cloned(),
            ));
            let step = script[(attempt.number() as usize - 1).min(script.len() - 1)];
            std::future::ready(step.map_err(io))
        }
    }

    fn attempts(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Start of each attempt, relative to the first.
    fn starts(&self) -> Vec<Duration> {
        let log = self.log.lock().unwrap();
        log.iter().map(|(_, at, _)| *at - log[0].1).collect()
    }

    fn keys(&self) -> Vec<Option<IdempotencyKey>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.2.clone())
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn scripted_success_at_the_first_attempt_returns_at_once() {
    let script = Script::default();
    let start = Instant::now();
    let got = exact()
        .execute(Idempotency::Idempotent, script.run(&[Ok(7)]))
        .await
        .unwrap();
    assert_eq!(got, 7);
    assert_eq!(script.attempts(), 1);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn scripted_transient_failures_are_retried_with_backoff_then_succeed() {
    let script = Script::default();
    let got = exact()
        .execute(
            Idempotency::Idempotent,
            script.run(&[Err(ConnectionReset), Err(ConnectionReset), Ok(3)]),
        )
        .await
        .unwrap();
    assert_eq!(got, 3);
    assert_eq!(script.starts(), [S(0), S(1), S(3)]);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_max_retries_with_the_last_error_and_the_count() {
    let script = Script::default();
    let err = exact()
        .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
        .await
        .unwrap_err();
    assert!(err.is_retries_exhausted(), "{err:?}");
    assert_eq!(err.attempts(), Some(4), "1 attempt + 3 retries");
    assert_eq!(script.starts(), [S(0), S(1), S(3), S(7)]);
    let last = err
        .source()
        .unwrap()
        .downcast_ref::<std::io::Error>()
        .unwrap();
    assert_eq!(last.kind(), ConnectionReset);
    assert!(err.to_string().contains("4 attempts"), "{err}");

    let script = Script::default();
    let err = exact()
        .backoff(Backoff::new().max_retries(0))
        .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
        .await
        .unwrap_err();
    assert!(err.is_retries_exhausted());
    assert_eq!(script.attempts(), 1, "retries off");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let script = Script::default();
    let err = exact()
        .execute(Idempotency::Idempotent, script.run(&[Err(InvalidInput)]))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(script.attempts(), 1);
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_call_is_not_retried_after_the_request_may_have_been_processed() {
    let script = Script::default();
    let err = exact()
        .execute(
            Idempotency::NonIdempotent,
            script.run(&[Err(ConnectionReset), Ok(1)]),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_retryable(), "{err:?}");
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(
        script.attempts(),
        1,
        "a reset after sending could have created it"
    );
    let cause = err.source().unwrap().downcast_ref::<std::io::Error>();
    assert_eq!(cause.map(std::io::Error::kind), Some(ConnectionReset));
}

#[tokio::test(start_paused = true)]
async fn non_idempotent_call_is_retried_when_nothing_was_sent() {
    let script = Script::default();
    let got = exact()
        .execute(
            Idempotency::NonIdempotent,
            script.run(&[Err(ConnectionRefused), Err(ConnectionRefused), Ok(9)]),
        )
        .await
        .unwrap();
    assert_eq!(got, 9);
    assert_eq!(script.attempts(), 3);
    // Refused, then reset: the second failure may have been processed.
    let script = Script::default();
    let err = exact()
        .execute(
            Idempotency::NonIdempotent,
            script.run(&[Err(ConnectionRefused), Err(ConnectionReset), Ok(9)]),
        )
        .await
        .unwrap_err();
    assert!(err.is_not_retryable());
    assert_eq!(err.attempts(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn keyed_call_is_retried_and_carries_the_same_key_every_attempt() {
    let key = IdempotencyKey::random();
    let script = Script::default();
    let got = exact()
        .execute(
            Idempotency::Key(key.clone()),
            script.run(&[Err(ConnectionReset), Err(ConnectionReset), Ok(5)]),
        )
        .await
        .unwrap();
    assert_eq!(got, 5);
    assert_eq!(script.keys(), vec![Some(key.clone()); 3]);
    // Idempotent calls carry no key.
    let script = Script::default();
    exact()
        .execute(Idempotency::Idempotent, script.run(&[Ok(1)]))
        .await
        .unwrap();
    assert_eq!(script.keys(), [None]);
}

#[test]
fn random_keys_are_uuid_v4_and_distinct() {
    let a = IdempotencyKey::random();
    let b = IdempotencyKey::random();
    assert_ne!(a, b);
    let s = a.as_str();
    assert_eq!(s.len(), 36);
    assert_eq!(s.as_bytes()[14], b'4', "version 4: {s}");
    assert!(
        matches!(s.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
        "variant: {s}"
    );
    assert_eq!(
        s.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert_eq!(IdempotencyKey::new("k-1").to_string(), "k-1");
}

#[tokio::test(start_paused = true)]
async fn a_hung_attempt_is_cut_by_the_per_attempt_timeout_and_retried() {
    let calls = AtomicU32::new(0);
    let start = Instant::now();
    let got = exact()
        .attempt_timeout(Some(S(2)))
        .execute(Idempotency::Idempotent, |attempt| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if attempt.number() == 1 {
                    assert_eq!(attempt.deadline(), Some(start + S(2)));
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::io::Error>(attempt.number())
            }
        })
        .await
        .unwrap();
    assert_eq!(got, 2);
    assert_eq!(start.elapsed(), S(3), "2 s timeout + 1 s backoff");
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_timeouts_at_the_source_and_not_retried_without_a_key() {
    let hang = |_: Attempt| async {
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    };
    let err = exact()
        .attempt_timeout(Some(S(2)))
        .execute(Idempotency::Idempotent, hang)
        .await
        .unwrap_err();
    assert!(err.is_retries_exhausted(), "{err:?}");
    let last = err
        .source()
        .unwrap()
        .downcast_ref::<mcp_resilience::Error>();
    assert!(last.unwrap().is_timeout(), "{err:?}");
    // A timeout may have been processed: a create without a key stops there.
    let err = exact()
        .attempt_timeout(Some(S(2)))
        .execute(Idempotency::NonIdempotent, hang)
        .await
        .unwrap_err();
    assert!(err.is_not_retryable(), "{err:?}");
    assert_eq!(err.attempts(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn the_overall_deadline_cuts_an_attempt() {
    let start = Instant::now();
    let err = exact()
        .deadline(Some(S(5)))
        .attempt_timeout(Some(S(10)))
        .execute(Idempotency::Idempotent, |attempt| async move {
            if attempt.number() == 1 {
                return Err(io(ConnectionReset));
            }
            std::future::pending::<()>().await;
            Ok(())
        })
        .await
        .unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    assert_eq!(err.attempts(), Some(2));
    assert_eq!(start.elapsed(), S(5));
    // The last real failure is kept as the source.
    let cause = err.source().unwrap().downcast_ref::<std::io::Error>();
    assert_eq!(cause.map(std::io::Error::kind), Some(ConnectionReset));
}

#[tokio::test(start_paused = true)]
async fn a_retry_that_would_start_after_the_deadline_is_not_waited_for() {
    let script = Script::default();
    let start = Instant::now();
    let err = exact()
        .deadline(Some(Duration::from_millis(2500)))
        .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
        .await
        .unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err:?}");
    // Attempts at 0 s and 1 s; the next wait (2 s) would end at 3 s, past 2.5 s.
    assert_eq!(script.starts(), [S(0), S(1)]);
    assert_eq!(start.elapsed(), S(1), "gave up without sleeping");
}

fn response(status: u16, retry_after: Option<&str>) -> Response<()> {
    let mut b = Response::builder().status(status);
    if let Some(v) = retry_after {
        b = b.header("retry-after", v);
    }
    b.body(()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn retry_after_replaces_the_backoff_and_is_capped() {
    let policy = exact().classifier(HttpClassifier::new());
    let waits = [("3", S(3)), ("120", S(10)), ("0", S(0))];
    for (value, expected) in waits {
        let start = Instant::now();
        let resp = policy
            .execute(Idempotency::Idempotent, |attempt| async move {
                Ok::<_, BoxError>(if attempt.number() == 1 {
                    response(503, Some(value))
                } else {
                    response(200, None)
                })
            })
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(start.elapsed(), expected, "Retry-After: {value}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_judged_transient_is_returned_when_retries_run_out() {
    let calls = AtomicU32::new(0);
    let resp = exact()
        .classifier(HttpClassifier::new())
        .execute(Idempotency::Idempotent, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, BoxError>(response(503, None)) }
        })
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "the caller can read the last response");
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_tool_error_result_is_returned_without_retrying() {
    let calls = AtomicU32::new(0);
    let result = exact()
        .classifier(ToolCallClassifier)
        .execute(Idempotency::Idempotent, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, mcp_transport::Error>(CallToolResult {
                    content: Vec::new(),
                    structured_content: None,
                    is_error: true,
                    meta: None,
                    result_type: None,
                })
            }
        })
        .await
        .unwrap();
    assert!(result.is_error);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_fails_fast_without_calling_the_operation() {
    let breaker = CircuitBreaker::new("eastus", BreakerConfig::new().min_throughput(2));
    let policy = exact().breaker(Some(breaker.clone()));
    let script = Script::default();
    // Two calls of 4 failed attempts each: the breaker opens during the first call.
    let err = policy
        .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
        .await
        .unwrap_err();
    assert!(err.is_circuit_open(), "{err:?}");
    assert_eq!(err.attempts(), Some(2), "opened after 2 failures");
    assert_eq!(script.attempts(), 2);
    assert_eq!(breaker.state(), BreakerState::Open);
    let script = Script::default();
    let err = policy
        .execute(Idempotency::Idempotent, script.run(&[Ok(1)]))
        .await
        .unwrap_err();
    assert!(err.is_circuit_open());
    assert_eq!(err.attempts(), Some(0));
    assert_eq!(script.attempts(), 0, "the operation never ran");
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_count_as_answers_for_the_breaker() {
    let breaker = CircuitBreaker::new("eastus", BreakerConfig::new().min_throughput(3));
    let policy = exact().breaker(Some(breaker.clone()));
    for _ in 0..5 {
        let script = Script::default();
        let err = policy
            .execute(Idempotency::Idempotent, script.run(&[Err(InvalidInput)]))
            .await
            .unwrap_err();
        assert!(err.is_permanent());
    }
    let s = breaker.snapshot();
    assert_eq!((s.state, s.calls, s.failures), (BreakerState::Closed, 5, 0));
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_draws_the_same_waits() {
    let policy = RetryPolicy::new().seed(99);
    let mut runs = Vec::new();
    for _ in 0..2 {
        let script = Script::default();
        let _ = policy
            .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
            .await;
        runs.push(script.starts());
    }
    assert_eq!(runs[0], runs[1]);
    assert_eq!(runs[0].len(), 4);
    assert!(runs[0].windows(2).all(|w| w[1] - w[0] <= S(10)));
}

#[tokio::test(start_paused = true)]
async fn nested_policies_do_not_multiply_retries() {
    let inner = exact();
    let outer = exact();
    let calls = Arc::new(AtomicU32::new(0));
    let err = outer
        .execute(Idempotency::Idempotent, |_| {
            let (inner, calls) = (inner.clone(), calls.clone());
            async move {
                inner
                    .execute(Idempotency::Idempotent, |_| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async { Err::<(), _>(io(ConnectionReset)) }
                    })
                    .await
            }
        })
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 4, "not 16");
}

#[tokio::test(start_paused = true)]
async fn retries_and_giving_up_emit_events() {
    let events = Events::default();
    let _guard = events.install();
    let script = Script::default();
    let _ = exact()
        .execute(Idempotency::Idempotent, script.run(&[Err(ConnectionReset)]))
        .await;
    let scheduled = events.named("mcp_resilience.retry.scheduled");
    let delays: Vec<&str> = scheduled.iter().map(|e| e.field("delay_ms")).collect();
    assert_eq!(delays, ["1000", "2000", "4000"]);
    assert_eq!(scheduled[0].field("kind"), "io");
    assert_eq!(scheduled[0].target, "mcp_resilience::retry");
    let gave_up = events.named("mcp_resilience.retry.gave_up");
    assert_eq!(gave_up.len(), 1);
    assert_eq!(gave_up[0].field("reason"), "exhausted");
    assert_eq!(gave_up[0].level, tracing::Level::INFO);
    assert_eq!(gave_up[0].field("attempts"), "4");

    let _ = exact()
        .execute(
            Idempotency::NonIdempotent,
            script.run(&[Err(ConnectionReset)]),
        )
        .await;
    let gave_up = events.named("mcp_resilience.retry.gave_up");
    assert_eq!(gave_up[1].field("reason"), "not_retryable", "never silent");
}

#[test]
fn policies_are_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>(_: &T) {}
    check(&RetryPolicy::new());
    check(&RetryPolicy::new().classifier(HttpClassifier::new()));
    check(&RetryPolicy::new().classifier(ToolCallClassifier));
}

mod spreading {
    //! Retry spreading through `decide`: the window grows with the retries waiting.

    use std::time::Duration;

    use mcp_resilience::classify::{Delivery, FailureKind, Verdict};
    use mcp_resilience::retry::{Decision, Idempotency, RetryPolicy, RetryState};
    use mcp_resilience::{Backoff, Strategy};

    const MS: fn(u64) -> Duration = Duration::from_millis;

    fn policy() -> RetryPolicy {
        RetryPolicy::new().backoff(
            Backoff::new()
                .strategy(Strategy::FullJitter)
                .base(MS(10))
                .cap(MS(2_000))
                .max_retries(u32::MAX),
        )
    }

    fn delays(policy: &RetryPolicy, verdict: &Verdict, state: RetryState) -> Vec<Duration> {
        let mut rng = fastrand::Rng::with_seed(7);
        (0..2_000)
            .map(|_| {
                match policy.decide(&Idempotency::Idempotent, verdict, &state, None, &mut rng) {
                    Decision::Retry { delay, .. } => delay,
                    other => panic!("expected a retry, got {other:?}"),
                }
            })
            .collect()
    }

    fn mean(d: &[Duration]) -> Duration {
        d.iter().sum::<Duration>() / u32::try_from(d.len()).unwrap()
    }

    const BUSY: Verdict = Verdict::transient(FailureKind::ServerError, Delivery::MaybeProcessed);

    #[test]
    fn ninety_nine_waiting_retries_spread_the_next_over_a_hundred_attempt_lengths() {
        // First retry: the backoff alone draws from [0, 10 ms].
        let alone = delays(&policy(), &BUSY, RetryState::new(1, Duration::ZERO));
        assert!(alone.iter().all(|d| *d <= MS(10)));
        let crowded = RetryState::new(1, Duration::ZERO).with_load(MS(15), 99);
        let spread = delays(&policy(), &BUSY, crowded);
        assert!(spread.iter().all(|d| *d <= MS(1_485)), "window 99 × 15 ms");
        let m = mean(&spread);
        assert!(
            m > MS(650) && m < MS(850),
            "uniform over [0, 1.5 s]: mean {m:?}"
        );
    }

    #[test]
    fn the_spread_window_is_capped_by_the_backoff_cap() {
        let state = RetryState::new(1, Duration::ZERO).with_load(MS(100), 10_000);
        assert!(
            delays(&policy(), &BUSY, state)
                .iter()
                .all(|d| *d <= MS(2_000))
        );
    }

    #[test]
    fn without_spreading_or_without_a_budget_the_backoff_decides_alone() {
        let state = RetryState::new(1, Duration::ZERO).with_load(MS(15), 99);
        let alone = delays(&policy(), &BUSY, RetryState::new(1, Duration::ZERO));
        assert_eq!(delays(&policy().spread_retries(false), &BUSY, state), alone);
        assert_eq!(delays(&policy().budget(None), &BUSY, state), alone);
    }

    #[test]
    fn a_retry_after_is_kept_as_the_server_gave_it() {
        let mut throttled = Verdict::transient(FailureKind::Throttled, Delivery::MaybeProcessed);
        if let Verdict::Transient(t) = &mut throttled {
            t.retry_after = Some(MS(300));
        }
        let state = RetryState::new(1, Duration::ZERO).with_load(MS(15), 99);
        assert!(
            delays(&policy(), &throttled, state)
                .iter()
                .all(|d| *d == MS(300))
        );
    }
}
