//! `HedgeLayer` over a scripted service on paused time: the extra attempt after the delay,
//! the first good answer winning and the loser cancelled, idempotent requests only, the
//! bound on extra attempts, the retry budget, transient failures waiting for the other
//! attempt, and the percentile delay.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

mod scripted;

use std::time::Duration;

use bytes::Bytes;
use mcp_resilience::BoxError;
use mcp_resilience::budget::BudgetConfig;
use mcp_resilience::hedge::{HedgeDelay, HedgeLayer};
use scripted::{CREATE, Fail, KEYED_CREATE, Scripted, Status, TOOLS_LIST, after, post};
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

const URL: &str = "http://127.0.0.1:9/mcp";
const MS: fn(u64) -> Duration = Duration::from_millis;

fn hedge() -> HedgeLayer {
    HedgeLayer::new(HedgeDelay::Fixed(MS(1000)))
}

async fn send<S>(svc: S, req: http::Request<Bytes>) -> Result<http::Response<String>, BoxError>
where
    S: tower::Service<http::Request<Bytes>, Response = http::Response<String>, Error = BoxError>,
{
    svc.oneshot(req).await
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_after_the_delay_first_answer_wins_and_the_loser_is_cancelled() {
    let inner = Scripted::steps(vec![
        after(MS(5000), Status(200)),
        after(MS(100), Status(201)),
    ]);
    let start = Instant::now();
    let resp = send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(start.elapsed(), MS(1100));
    assert_eq!(inner.offsets(), [MS(0), MS(1000)]);
    tokio::time::sleep(MS(10_000)).await;
    assert_eq!(inner.finished(), 1, "the slow first attempt was dropped");
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_not_sent_when_the_first_answers_in_time() {
    let inner = Scripted::steps(vec![after(MS(900), Status(200))]);
    send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    tokio::time::sleep(MS(10_000)).await;
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_only_for_requests_safe_to_repeat() {
    let inner = Scripted::steps(vec![after(MS(3000), Status(200))]);
    let start = Instant::now();
    send(hedge().layer(inner.clone()), post(URL, CREATE))
        .await
        .unwrap();
    assert_eq!((inner.count(), start.elapsed()), (1, MS(3000)));

    let inner = Scripted::steps(vec![after(MS(3000), Status(200))]);
    send(hedge().layer(inner.clone()), post(URL, KEYED_CREATE))
        .await
        .unwrap();
    assert_eq!(inner.count(), 2);
    assert!(
        inner
            .seen()
            .iter()
            .all(|s| s.body == KEYED_CREATE.as_bytes())
    );
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_bounded_by_max_extra() {
    let inner = Scripted::steps(vec![after(MS(10_000), Status(200))]);
    send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(inner.offsets(), [MS(0), MS(1000)]);

    let inner = Scripted::steps(vec![after(MS(10_000), Status(200))]);
    send(
        hedge().max_extra(2).layer(inner.clone()),
        post(URL, TOOLS_LIST),
    )
    .await
    .unwrap();
    assert_eq!(inner.offsets(), [MS(0), MS(1000), MS(2000)]);

    let inner = Scripted::steps(vec![after(MS(10_000), Status(200))]);
    send(
        hedge().max_extra(0).layer(inner.clone()),
        post(URL, TOOLS_LIST),
    )
    .await
    .unwrap();
    assert_eq!(inner.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_pays_from_the_retry_budget() {
    let budget = BudgetConfig::new().capacity(5).retry_cost(5).build();
    let layer = hedge().budget(Some(budget.clone()));
    // The hedge loses: its tokens are spent.
    let inner = Scripted::steps(vec![
        after(MS(1500), Status(200)),
        after(MS(5000), Status(200)),
    ]);
    send(layer.layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(inner.count(), 2);
    assert_eq!(budget.available(), 0);
    // Empty budget: no hedge.
    let inner = Scripted::steps(vec![after(MS(3000), Status(200))]);
    send(layer.layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(inner.count(), 1);
    // A hedge that wins earns the success refund; its cost stays spent.
    let budget = BudgetConfig::new().capacity(5).retry_cost(5).build();
    let inner = Scripted::steps(vec![
        after(MS(5000), Status(200)),
        after(MS(10), Status(200)),
    ]);
    send(
        hedge().budget(Some(budget.clone())).layer(inner.clone()),
        post(URL, TOOLS_LIST),
    )
    .await
    .unwrap();
    assert_eq!(budget.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_transient_failure_waits_for_the_other_attempt() {
    let inner = Scripted::steps(vec![
        after(MS(2000), Status(503)),
        after(MS(2000), Status(200)),
    ]);
    let start = Instant::now();
    let resp = send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!((resp.status().as_u16(), start.elapsed()), (200, MS(3000)));
    let reset = Fail(std::io::ErrorKind::ConnectionReset);
    let inner = Scripted::steps(vec![after(MS(2000), reset), after(MS(2000), Status(200))]);
    let resp = send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Every attempt fails: the last failure comes back.
    let inner = Scripted::steps(vec![
        after(MS(2000), Status(503)),
        after(MS(2000), Status(502)),
    ]);
    let resp = send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    // A permanent answer wins at once.
    let inner = Scripted::steps(vec![
        after(MS(2000), Status(400)),
        after(MS(2000), Status(200)),
    ]);
    let resp = send(hedge().layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(start_paused = true)]
async fn scripted_hedge_percentile_delay_follows_recent_latencies() {
    let layer = HedgeLayer::new(HedgeDelay::Percentile {
        percentile: 0.9,
        min_samples: 10,
        fallback: MS(2000),
    });
    assert_eq!(layer.current_delay(), MS(2000));
    for n in 1..=10 {
        let inner = Scripted::steps(vec![after(MS(100 * n), Status(200))]);
        send(layer.layer(inner), post(URL, TOOLS_LIST))
            .await
            .unwrap();
    }
    assert_eq!(layer.current_delay(), MS(900));
    // The next slow request is hedged after 900 ms.
    let inner = Scripted::steps(vec![
        after(MS(5000), Status(200)),
        after(MS(10), Status(200)),
    ]);
    send(layer.layer(inner.clone()), post(URL, TOOLS_LIST))
        .await
        .unwrap();
    assert_eq!(inner.offsets(), [MS(0), MS(900)]);
}
