//! The circuit breaker on paused tokio time, driven by scripted call outcomes: opening only
//! past the minimum throughput and the failure ratio, count and time windows sliding, the
//! open time (jittered, growing on reopen), half-open probes, slow calls, cancelled and stale
//! calls, snapshots, per-endpoint breakers and the state-change events.

mod common;

use std::time::Duration;

use common::Events;
use mcp_resilience::breaker::{
    BreakerConfig, BreakerState, CallOutcome, CircuitBreaker, CircuitBreakers, STATE_CHANGE_EVENT,
    Window,
};
use tokio::time::advance;

const S: fn(u64) -> Duration = Duration::from_secs;

/// Opens at 50 % over at least 10 calls, for exactly 30 s, with 2 probes.
fn config() -> BreakerConfig {
    BreakerConfig::new()
        .min_throughput(10)
        .failure_ratio(0.5)
        .open_jitter(0.0)
        .open_duration(S(30), S(300))
        .half_open_probes(2)
}

fn call(b: &CircuitBreaker, outcome: CallOutcome) {
    b.try_acquire().expect("admitted").record(outcome);
}

fn calls(b: &CircuitBreaker, n: usize, outcome: CallOutcome) {
    for _ in 0..n {
        call(b, outcome);
    }
}

use CallOutcome::{Failure, Success};

/// A breaker of `config` tripped open.
fn tripped(config: BreakerConfig) -> CircuitBreaker {
    let b = CircuitBreaker::new("scheduler-eastus", config);
    calls(&b, 10, Failure);
    assert_eq!(b.state(), BreakerState::Open);
    b
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_minimum_throughput_even_if_every_call_fails() {
    let b = CircuitBreaker::new("e", config());
    calls(&b, 9, Failure);
    assert_eq!(b.state(), BreakerState::Closed);
    let s = b.snapshot();
    assert_eq!((s.calls, s.failures), (9, 9));
    assert_eq!(s.failure_ratio, 1.0);
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn opens_only_when_the_failure_ratio_is_reached() {
    let b = CircuitBreaker::new("e", config());
    calls(&b, 6, Success);
    calls(&b, 4, Failure);
    assert_eq!(b.state(), BreakerState::Closed, "4/10 is below 50 %");
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Closed, "5/11");
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Open, "6/12 reaches 50 %");
}

#[tokio::test(start_paused = true)]
async fn the_count_window_forgets_old_calls() {
    let b = CircuitBreaker::new("e", config().window(Window::Calls(10)));
    calls(&b, 4, Failure);
    calls(&b, 10, Success);
    let s = b.snapshot();
    assert_eq!((s.calls, s.failures), (10, 0), "the failures slid out");
    calls(&b, 4, Failure);
    assert_eq!(b.state(), BreakerState::Closed);
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Open, "5 of the last 10");
}

#[tokio::test(start_paused = true)]
async fn the_time_window_forgets_calls_older_than_it() {
    let b = CircuitBreaker::new("e", config().window(Window::Time(S(10))).min_throughput(4));
    calls(&b, 3, Failure);
    advance(S(11)).await;
    assert_eq!(b.snapshot().calls, 0, "aged out");
    calls(&b, 3, Failure);
    assert_eq!(b.state(), BreakerState::Closed, "3 calls in the window");
    advance(S(5)).await;
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn open_refuses_calls_until_the_open_time_passes_then_half_opens() {
    let b = tripped(config());
    let err = b.try_acquire().unwrap_err();
    assert!(err.is_circuit_open(), "{err:?}");
    assert_eq!(b.snapshot().open_remaining, Some(S(30)));
    advance(S(30) - Duration::from_millis(1)).await;
    assert!(b.try_acquire().unwrap_err().is_circuit_open());
    advance(Duration::from_millis(1)).await;
    let probe = b.try_acquire().expect("half-open admits a probe");
    assert!(probe.is_probe());
    assert_eq!(b.state(), BreakerState::HalfOpen);
    probe.record(Success);
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_n_probes_and_closes_when_all_succeed() {
    let b = tripped(config());
    advance(S(30)).await;
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    let err = b.try_acquire().unwrap_err();
    assert!(err.is_circuit_open(), "only 2 probes: {err}");
    assert_eq!(b.snapshot().probes_in_flight, 2);
    p1.record(Success);
    assert_eq!(b.state(), BreakerState::HalfOpen);
    assert!(b.try_acquire().is_err(), "finished probes still count");
    p2.record(Success);
    assert_eq!(b.state(), BreakerState::Closed);
    let s = b.snapshot();
    assert_eq!((s.calls, s.consecutive_opens), (0, 0), "a fresh window");
    call(&b, Failure);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_reopens_for_twice_as_long_up_to_the_max() {
    let b = tripped(config().open_duration(S(30), S(100)));
    assert_eq!(b.snapshot().consecutive_opens, 1);
    for expected in [60, 100, 100] {
        advance(b.snapshot().open_remaining.unwrap()).await;
        b.try_acquire().unwrap().record(Failure);
        let s = b.snapshot();
        assert_eq!(s.state, BreakerState::Open);
        assert_eq!(s.open_remaining, Some(S(expected)));
    }
    assert_eq!(b.snapshot().consecutive_opens, 4);
}

#[tokio::test(start_paused = true)]
async fn the_open_time_is_jittered() {
    let mut seen = Vec::new();
    for seed in 0..20 {
        let b = tripped(config().open_jitter(0.2).seed(seed));
        let open = b.snapshot().open_remaining.unwrap();
        assert!(open >= S(24) && open <= S(36), "seed {seed}: {open:?}");
        seen.push(open);
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() > 15, "{seen:?}");
    // The same seed opens for the same time.
    let a = tripped(config().open_jitter(0.2).seed(7));
    let b = tripped(config().open_jitter(0.2).seed(7));
    assert_eq!(a.snapshot().open_remaining, b.snapshot().open_remaining);
}

#[tokio::test(start_paused = true)]
async fn slow_successes_count_as_failures() {
    let b = CircuitBreaker::new("e", config().min_throughput(2).slow_call(Some(S(1))));
    let permit = b.try_acquire().unwrap();
    advance(S(2)).await;
    permit.record(Success);
    let s = b.snapshot();
    assert_eq!((s.calls, s.failures, s.slow), (1, 1, 1));
    call(&b, Success); // fast
    assert_eq!(b.state(), BreakerState::Open, "1 slow of 2 calls is 50 %");

    let b = CircuitBreaker::new("e", config().min_throughput(1).slow_call(None));
    let permit = b.try_acquire().unwrap();
    advance(S(3600)).await;
    permit.record(Success);
    assert_eq!(b.snapshot().slow, 0, "slow-call rule off");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_probe_frees_its_slot() {
    let b = tripped(config().half_open_probes(1));
    advance(S(30)).await;
    let probe = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop(probe); // the call was cancelled: no outcome
    assert_eq!(b.state(), BreakerState::HalfOpen);
    b.try_acquire().expect("slot freed").record(Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_of_calls_admitted_before_a_state_change_are_ignored() {
    let b = CircuitBreaker::new("e", config());
    let old_success = b.try_acquire().unwrap();
    let old_failure = b.try_acquire().unwrap();
    calls(&b, 10, Failure);
    assert_eq!(b.state(), BreakerState::Open);
    old_success.record(Success);
    advance(S(30)).await;
    let probe = b.try_acquire().unwrap();
    old_failure.record(Failure); // from the closed era: not a failed probe
    assert_eq!(b.state(), BreakerState::HalfOpen);
    probe.record(Success);
    b.try_acquire().unwrap().record(Success);
    assert_eq!(b.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn state_changes_emit_events_with_endpoint_states_and_ratio() {
    let events = Events::default();
    let _guard = events.install();
    let b = CircuitBreaker::new("scheduler-eastus", config());
    calls(&b, 4, Success);
    calls(&b, 6, Failure);
    advance(S(30)).await;
    b.try_acquire().unwrap().record(Success);
    b.try_acquire().unwrap().record(Success);

    let changes = events.named(STATE_CHANGE_EVENT);
    assert_eq!(STATE_CHANGE_EVENT, "mcp_resilience.breaker.state_change");
    let seen: Vec<(&str, &str)> = changes
        .iter()
        .map(|e| (e.field("from"), e.field("to")))
        .collect();
    assert_eq!(
        seen,
        [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "closed")
        ]
    );
    let opened = &changes[0];
    assert_eq!(opened.level, tracing::Level::WARN);
    assert_eq!(opened.target, "mcp_resilience::breaker");
    assert_eq!(opened.field("endpoint"), "scheduler-eastus");
    assert_eq!(opened.field("failure_ratio"), "0.6");
    assert_eq!(opened.field("calls"), "10");
    assert_eq!(opened.field("failures"), "6");
    assert_eq!(opened.field("open_ms"), "30000");
    assert_eq!(changes[1].level, tracing::Level::INFO);
    assert_eq!(changes[2].level, tracing::Level::INFO);
    assert_eq!(changes[2].field("calls"), "2", "the probes");
}

#[tokio::test(start_paused = true)]
async fn snapshot_reports_state_and_counts() {
    let b = CircuitBreaker::new("e", config());
    call(&b, Success);
    call(&b, Success);
    call(&b, Failure);
    let s = b.snapshot();
    assert_eq!(&*s.endpoint, "e");
    assert_eq!(s.state, BreakerState::Closed);
    assert_eq!((s.calls, s.failures, s.slow), (3, 1, 0));
    assert!((s.failure_ratio - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(s.open_remaining, None);
    assert_eq!(BreakerState::HalfOpen.as_str(), "half_open");
}

#[tokio::test(start_paused = true)]
async fn breakers_are_per_endpoint_and_shared_by_name() {
    let breakers = CircuitBreakers::new(config());
    let east = breakers.get("eastus");
    calls(&east, 10, Failure);
    assert_eq!(
        breakers.get("eastus").state(),
        BreakerState::Open,
        "same breaker"
    );
    assert_eq!(breakers.get("westus").state(), BreakerState::Closed);
    let mut states: Vec<(String, BreakerState)> = breakers
        .snapshots()
        .into_iter()
        .map(|s| (s.endpoint.to_string(), s.state))
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        states,
        [
            ("eastus".to_owned(), BreakerState::Open),
            ("westus".to_owned(), BreakerState::Closed)
        ]
    );
}
