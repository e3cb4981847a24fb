//! `mcp-auth`'s warm token cache: the cost of `token()` when the cached token is fresh, through
//! `Arc<dyn TokenSource>` (the boxed trait future), the inherent `get` (an unboxed future) and
//! the synchronous `cached`, uncontended and from 1, 2, 4 and 8 threads at once.
//!
//! The contended group reports nanoseconds per call per thread: every thread makes the
//! iteration count of calls, and the time is the threads' mean wall time. Beside each, the
//! floor: cloning and dropping the one shared token that every call returns (its two reference
//! counts move between cores). With more threads than cores, time-slicing inflates both by
//! about threads / cores; compare the two rows, not the thread counts.

use std::future::Future;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mcp_auth::{AccessToken, CachedTokenSource, StaticToken, TokenRequest, TokenSource};

/// Polls once: every future measured here is ready at the first poll.
fn ready<F: Future>(future: F) -> F::Output {
    benches::ready(future, "the warm cache")
}

/// A cache holding a fresh day-long token.
fn warm_cache() -> Arc<CachedTokenSource<StaticToken>> {
    let expires = SystemTime::now() + Duration::from_secs(24 * 3600);
    let inner = StaticToken::from(AccessToken::new("bench-token", Some(expires)));
    let cache = Arc::new(CachedTokenSource::new(inner));
    ready(cache.get(&TokenRequest::new())).expect("first token");
    cache
}

fn uncontended(c: &mut Criterion) {
    let cache = warm_cache();
    let source: Arc<dyn TokenSource> = cache.clone();
    let request = TokenRequest::new();
    let mut g = c.benchmark_group("token_cache_warm");
    g.bench_function("dyn_token_source", |b| {
        b.iter(|| ready(source.token(black_box(&request))))
    });
    g.bench_function("inherent_get", |b| {
        b.iter(|| ready(cache.get(black_box(&request))))
    });
    g.bench_function("inherent_cached_sync", |b| {
        b.iter(|| cache.cached(black_box(&request)))
    });
    g.finish();

    // What one hot-path call cannot avoid: reading the clock, and cloning then dropping the
    // returned token (two reference counts).
    let token = ready(cache.get(&request)).expect("token");
    let mut g = c.benchmark_group("token_cache_floor");
    g.bench_function("tokio_instant_now", |b| b.iter(tokio::time::Instant::now));
    g.bench_function("system_time_now", |b| b.iter(SystemTime::now));
    g.bench_function("token_clone_drop", |b| b.iter(|| black_box(&token).clone()));
    g.finish();
}

/// Runs `call` `iters` times on each of `threads` threads at once; the threads' mean wall time.
fn on_threads(threads: usize, iters: u64, call: &(dyn Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let total: Duration = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        call();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .sum()
    });
    total / u32::try_from(threads).unwrap_or(1)
}

fn contended(c: &mut Criterion) {
    let cache = warm_cache();
    let token = ready(cache.get(&TokenRequest::new())).expect("token");
    let source: Arc<dyn TokenSource> = cache;
    let request = TokenRequest::new();
    let mut g = c.benchmark_group("token_cache_warm_threads");
    for threads in [1usize, 2, 4, 8] {
        g.bench_with_input(
            BenchmarkId::new("dyn_token_source_per_call_per_thread", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, &|| {
                        black_box(ready(source.token(black_box(&request)))).expect("token");
                    })
                })
            },
        );
        // The floor under contention: every call clones and drops the one shared token, so
        // its two reference counts move between cores.
        g.bench_with_input(
            BenchmarkId::new("floor_token_clone_drop_per_call_per_thread", threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    on_threads(threads, iters, &|| {
                        black_box(black_box(&token).clone());
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
