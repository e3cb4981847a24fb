//! `mcp-resilience`'s happy path: what `RetryPolicy::execute` adds around an operation that
//! succeeds at once, with the whole policy (retry budget, circuit breaker, backoff, overall
//! deadline and per-attempt timeout), and the pieces of that cost. Target: at most 1 µs per
//! call.
//!
//! Every future is polled once inside the runtime's context (the timers need it): an
//! immediately-ready operation finishes on the first poll, so no executor cost is counted.

use std::future::Future;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_resilience::breaker::CallOutcome;
use mcp_resilience::{
    BreakerConfig, CircuitBreaker, Idempotency, IdempotencyKey, RetryBudget, RetryPolicy,
};

/// Polls once: every future measured here is ready at the first poll.
fn ready<F: Future>(future: F) -> F::Output {
    benches::ready(future, "the happy path")
}

async fn op(n: u64) -> Result<u64, std::io::Error> {
    Ok(black_box(n))
}

fn happy_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _context = rt.enter();

    let breaker = CircuitBreaker::new("https://scheduler-eastus.example/mcp", BreakerConfig::new());
    let full = RetryPolicy::new()
        .budget(Some(RetryBudget::new()))
        .breaker(Some(breaker.clone()));
    let no_timers = full.clone().deadline(None).attempt_timeout(None);
    let budget_only = RetryPolicy::new().deadline(None).attempt_timeout(None);
    let bare = RetryPolicy::new()
        .budget(None)
        .deadline(None)
        .attempt_timeout(None);
    let key = IdempotencyKey::random();

    let mut g = c.benchmark_group("resilience_overhead");
    g.bench_function("execute_full_policy", |b| {
        b.iter(|| ready(full.execute(Idempotency::Idempotent, |_| op(1))))
    });
    g.bench_function("execute_full_policy_keyed", |b| {
        b.iter(|| ready(full.execute(Idempotency::Key(key.clone()), |_| op(1))))
    });
    g.bench_function("execute_budget_and_breaker_no_timers", |b| {
        b.iter(|| ready(no_timers.execute(Idempotency::Idempotent, |_| op(1))))
    });
    g.bench_function("execute_budget_only_no_timers", |b| {
        b.iter(|| ready(budget_only.execute(Idempotency::Idempotent, |_| op(1))))
    });
    g.bench_function("execute_bare", |b| {
        b.iter(|| ready(bare.execute(Idempotency::Idempotent, |_| op(1))))
    });
    g.bench_function("op_alone", |b| b.iter(|| ready(op(1))));
    g.finish();

    let mut g = c.benchmark_group("resilience_parts");
    g.bench_function("breaker_acquire_record", |b| {
        b.iter(|| {
            breaker
                .try_acquire()
                .expect("closed")
                .record(CallOutcome::Success)
        })
    });
    let budget = RetryBudget::new();
    g.bench_function("budget_record_success_full", |b| {
        b.iter(|| budget.record_success())
    });
    g.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    g.bench_function("timeout_ready_future", |b| {
        b.iter(|| {
            ready(tokio::time::timeout(
                std::time::Duration::from_secs(10),
                op(1),
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, happy_path);
criterion_main!(benches);
