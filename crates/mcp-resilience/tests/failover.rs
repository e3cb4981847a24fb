//! Failover over scripted services on paused time (routing and URI rewriting, moving on
//! within a call only when allowed, outlier ejection with growing times, probes that eject
//! and bring back, the return to the preferred endpoint, no healthy endpoint, the session
//! header on a switch), and over two real loopback MCP servers, the primary shut down
//! mid-run.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] fns")]

mod common;
mod scripted;

use std::io::ErrorKind::ConnectionRefused;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use mcp_resilience::failover::{Failover, FailoverConfig, FailoverLayer};
use mcp_resilience::{BoxError, Error};
use scripted::{CREATE, Fail, KEYED_CREATE, Scripted, Status, Step, TOOLS_LIST, after, post};
use tower::{Layer, ServiceExt};

const S: fn(u64) -> Duration = Duration::from_secs;
const EAST: &str = "http://east.example/mcp";
const WEST: &str = "http://west.example/v2/mcp";

fn no_probes() -> FailoverConfig {
    FailoverConfig::new()
        .probe_interval(None)
        .consecutive_failures(3)
        .ejection_time(S(10), S(60))
}

/// East answers `east` (or refuses connections while `down`), west answers 200.
fn regions(down: Arc<AtomicBool>, east: Step) -> Scripted {
    Scripted::new(move |seen, _| {
        if seen.authority() == "east.example" {
            if down.load(Ordering::SeqCst) {
                Fail(ConnectionRefused)
            } else {
                east.clone()
            }
        } else {
            Status(200)
        }
    })
}

async fn send<S>(svc: &S, req: http::Request<Bytes>) -> Result<http::Response<String>, BoxError>
where
    S: tower::Service<http::Request<Bytes>, Response = http::Response<String>, Error = BoxError>
        + Clone,
{
    svc.clone().oneshot(req).await
}

fn authorities(inner: &Scripted) -> Vec<String> {
    inner
        .seen()
        .iter()
        .map(|s| s.authority().to_owned())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_routes_to_the_preferred_endpoint_and_rewrites_the_uri() {
    let down = Arc::new(AtomicBool::new(false));
    let inner = regions(down.clone(), Status(200));
    let failover = Failover::new([EAST, WEST], no_probes()).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    send(&svc, post("http://east.example/mcp?tenant=a", TOOLS_LIST))
        .await
        .unwrap();
    down.store(true, Ordering::SeqCst);
    send(&svc, post("http://east.example/mcp?tenant=a", TOOLS_LIST))
        .await
        .unwrap();
    let uris: Vec<String> = inner.seen().iter().map(|s| s.uri.to_string()).collect();
    assert_eq!(
        uris,
        [
            "http://east.example/mcp?tenant=a",
            "http://east.example/mcp?tenant=a",
            "http://west.example/v2/mcp?tenant=a"
        ]
    );
    let health = failover.health();
    assert_eq!(health.active, Some(1));
    assert_eq!(health.switches, 1);
    assert_eq!(health.endpoints[0].consecutive_failures, 1);
    assert!(health.endpoints[0].healthy);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_moves_on_within_a_call_only_when_repeating_is_allowed() {
    let inner = regions(Arc::default(), Status(503));
    let svc =
        FailoverLayer::new(Failover::new([EAST, WEST], no_probes()).unwrap()).layer(inner.clone());
    // A read moves on after a 503.
    assert_eq!(
        send(&svc, post(EAST, TOOLS_LIST)).await.unwrap().status(),
        200
    );
    assert_eq!(authorities(&inner), ["east.example", "west.example"]);
    // A keyed create moves on after a 503 with `Retry-After` (the origin refused it) ...
    let inner = regions(Arc::default(), Step::StatusWith(503, "retry-after", "1"));
    let svc =
        FailoverLayer::new(Failover::new([EAST, WEST], no_probes()).unwrap()).layer(inner.clone());
    assert_eq!(
        send(&svc, post(EAST, KEYED_CREATE)).await.unwrap().status(),
        200
    );
    assert_eq!(authorities(&inner), ["east.example", "west.example"]);
    // ... and after any 503 when the regions share their idempotency store.
    let inner = regions(Arc::default(), Status(503));
    let shared = no_probes().shared_idempotency(true);
    let svc = FailoverLayer::new(Failover::new([EAST, WEST], shared).unwrap()).layer(inner.clone());
    assert_eq!(
        send(&svc, post(EAST, KEYED_CREATE)).await.unwrap().status(),
        200
    );
    assert_eq!(authorities(&inner), ["east.example", "west.example"]);
    // A create without a key may have been processed: its 503 comes back as it is.
    let inner = regions(Arc::default(), Status(503));
    let svc =
        FailoverLayer::new(Failover::new([EAST, WEST], no_probes()).unwrap()).layer(inner.clone());
    assert_eq!(send(&svc, post(EAST, CREATE)).await.unwrap().status(), 503);
    assert_eq!(authorities(&inner), ["east.example"]);
    // ... but a refused connection was not processed: it moves on.
    let inner = regions(Arc::new(AtomicBool::new(true)), Status(200));
    let svc =
        FailoverLayer::new(Failover::new([EAST, WEST], no_probes()).unwrap()).layer(inner.clone());
    assert_eq!(send(&svc, post(EAST, CREATE)).await.unwrap().status(), 200);
    assert_eq!(authorities(&inner), ["east.example", "west.example"]);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_ejects_with_growing_times_and_returns_to_the_preferred() {
    let down = Arc::new(AtomicBool::new(true));
    let inner = regions(down.clone(), Status(200));
    let failover = Failover::new([EAST, WEST], no_probes()).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    for _ in 0..3 {
        send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    }
    let east = &failover.health().endpoints[0];
    assert!(!east.healthy);
    assert_eq!((east.ejections, east.ejected_for), (1, Some(S(10))));
    // Ejected: traffic goes straight to west.
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    assert_eq!(inner.count(), 7);
    assert_eq!(inner.seen()[6].authority(), "west.example");
    // Its time is up; it is still down: one more failure ejects it for twice as long.
    tokio::time::advance(S(10)).await;
    assert!(failover.health().endpoints[0].healthy);
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    let east = &failover.health().endpoints[0];
    assert_eq!((east.ejections, east.ejected_for), (2, Some(S(20))));
    // It recovers; once its time is up, traffic returns to it.
    down.store(false, Ordering::SeqCst);
    tokio::time::advance(S(20)).await;
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    assert_eq!(inner.seen().last().unwrap().authority(), "east.example");
    let health = failover.health();
    assert_eq!(health.active, Some(0));
    assert_eq!(health.endpoints[0].consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_probes_eject_a_silent_endpoint_and_bring_it_back() {
    let silent = Arc::new(AtomicBool::new(true));
    let flag = silent.clone();
    let inner = Scripted::new(move |seen, _| {
        let east = seen.authority() == "east.example";
        if seen.method == http::Method::GET {
            assert!(seen.uri.path().ends_with("/ping"), "{}", seen.uri);
            if east && flag.load(Ordering::SeqCst) {
                return after(S(60), Status(200));
            }
            return after(Duration::from_millis(30), Status(200));
        }
        Status(200)
    });
    let config = FailoverConfig::new()
        .probe_interval(Some(S(5)))
        .consecutive_failures(3)
        .ejection_time(S(30), S(300));
    let failover = Failover::new([EAST, WEST], config).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    // Probes at 0, 5 and 10 s each time out after 2 s: ejected at 12 s, until 42 s.
    tokio::time::sleep(Duration::from_millis(12_500)).await;
    let health = failover.health();
    let (east, west) = (&health.endpoints[0], &health.endpoints[1]);
    assert!(!east.healthy);
    assert_eq!(east.ejections, 1);
    assert!(
        east.last_probe_error
            .as_deref()
            .unwrap()
            .contains("no answer"),
        "{east:?}"
    );
    assert_eq!(west.last_probe_latency, Some(Duration::from_millis(30)));
    assert!(west.healthy && west.last_probe_error.is_none());
    let probes = inner
        .seen()
        .iter()
        .filter(|s| s.method == http::Method::GET)
        .count();
    assert_eq!(probes, 6);
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    assert_eq!(inner.seen().last().unwrap().authority(), "west.example");
    // It answers again from 20 s, but stays out until its time is up and a probe (45 s)
    // succeeds.
    tokio::time::sleep(S(8)).await; // 20.5 s
    silent.store(false, Ordering::SeqCst);
    tokio::time::sleep(S(20)).await; // 40.5 s
    assert!(!failover.health().endpoints[0].healthy);
    tokio::time::sleep(S(5)).await; // 45.5 s
    let east = &failover.health().endpoints[0];
    assert!(east.healthy, "{east:?}");
    assert_eq!(east.last_probe_error, None);
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    assert_eq!(inner.seen().last().unwrap().authority(), "east.example");
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_without_a_healthy_endpoint_fails_fast() {
    let inner = Scripted::steps(vec![Fail(ConnectionRefused)]);
    let config = no_probes().consecutive_failures(1);
    let failover = Failover::new([EAST, WEST], config).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    // Both refuse: the last failure comes back as it is, and both are ejected.
    let err = send(&svc, post(EAST, TOOLS_LIST)).await.unwrap_err();
    assert!(err.downcast_ref::<std::io::Error>().is_some(), "{err:?}");
    assert!(failover.health().endpoints.iter().all(|e| !e.healthy));
    let err = send(&svc, post(EAST, TOOLS_LIST)).await.unwrap_err();
    let err = err.downcast_ref::<Error>().unwrap();
    assert!(err.is_no_healthy_endpoint(), "{err:?}");
    assert_eq!(err.attempts(), Some(0));
    assert_eq!(inner.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_keeps_the_session_header_so_the_new_server_refuses_it() {
    let inner = Scripted::new(|seen, _| {
        if seen.authority() == "east.example" {
            Fail(ConnectionRefused)
        } else if seen.headers.contains_key("mcp-session-id") {
            Status(404) // west does not know east's session
        } else {
            Status(200)
        }
    });
    let failover = Failover::new([EAST, WEST], no_probes()).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    let mut req = post(EAST, TOOLS_LIST);
    req.headers_mut()
        .insert("mcp-session-id", "east-1".parse().unwrap());
    // The 404 reaches the transport, which re-initializes (see the real-server test).
    assert_eq!(send(&svc, req).await.unwrap().status(), 404);
    assert_eq!(inner.seen()[1].headers["mcp-session-id"], "east-1");
    assert_eq!(failover.health().endpoints[1].consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_over_breakers_moves_past_an_open_breaker() {
    use mcp_resilience::CircuitBreakerLayer;
    use mcp_resilience::breaker::{BreakerConfig, CircuitBreakers, Window};
    // East answers 503: its breaker opens after 2 calls; failover is slower to eject (5).
    let inner = regions(Arc::default(), Status(503));
    let breakers = CircuitBreakers::new(
        BreakerConfig::new()
            .window(Window::Calls(2))
            .min_throughput(2)
            .open_jitter(0.0),
    );
    let failover = Failover::new([EAST, WEST], no_probes().consecutive_failures(5)).unwrap();
    let svc = tower::ServiceBuilder::new()
        .layer(FailoverLayer::new(failover.clone()))
        .layer(CircuitBreakerLayer::new(breakers.clone()))
        .service(inner.clone());
    for _ in 0..4 {
        assert_eq!(
            send(&svc, post(EAST, TOOLS_LIST)).await.unwrap().status(),
            200
        );
    }
    // East was sent two requests; then its open breaker refused the others unsent.
    assert_eq!(
        authorities(&inner),
        [
            "east.example",
            "west.example",
            "east.example",
            "west.example",
            "west.example",
            "west.example"
        ]
    );
    assert!(
        breakers
            .get("http://east.example")
            .try_acquire()
            .unwrap_err()
            .is_circuit_open()
    );
    assert_eq!(failover.health().endpoints[0].consecutive_failures, 4);
}

#[tokio::test(start_paused = true)]
async fn scripted_failover_events_for_switches_and_ejections() {
    let events = common::Events::default();
    let _guard = events.install();
    let down = Arc::new(AtomicBool::new(false));
    let inner = regions(down.clone(), Status(200));
    let failover = Failover::new([EAST, WEST], no_probes()).unwrap();
    let svc = FailoverLayer::new(failover).layer(inner);
    send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    down.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        send(&svc, post(EAST, TOOLS_LIST)).await.unwrap();
    }
    let switched = events.named("mcp_resilience.failover.switched");
    assert_eq!(switched.len(), 1);
    assert_eq!(switched[0].target, "mcp_resilience::failover");
    assert_eq!(switched[0].field("from"), EAST);
    assert_eq!(switched[0].field("to"), WEST);
    let ejected = events.named("mcp_resilience.failover.ejected");
    assert_eq!(ejected.len(), 1);
    assert_eq!(ejected[0].level, tracing::Level::WARN);
    assert_eq!(ejected[0].field("endpoint"), EAST);
    assert_eq!(ejected[0].field("ejections"), "1");
    assert_eq!(ejected[0].field("ejected_ms"), "10000");
}

#[test]
fn failover_refuses_bad_endpoint_lists() {
    let err = Failover::new(["ftp://h/x"], FailoverConfig::new()).unwrap_err();
    assert!(err.to_string().contains("ftp://h/x"), "{err}");
    let err = Failover::new(["https://u:secret@h/mcp?k=s3"], FailoverConfig::new()).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("secret") && !shown.contains("s3"),
        "{shown}"
    );
    let err = Failover::new(["/relative"], FailoverConfig::new()).unwrap_err();
    assert!(err.to_string().contains("/relative"), "{err}");
    assert!(Failover::new(Vec::<String>::new(), FailoverConfig::new()).is_err());
}

/// A keyed create whose attempt may have been processed by east (a plain 503: possibly a
/// gateway's answer after the request went through) stays on east: its retries go there,
/// never to west, which would create it again; once east is ejected they fail at once,
/// naming east; an answer from east releases the pin.
#[tokio::test(start_paused = true)]
async fn scripted_keyed_call_that_may_have_been_processed_is_pinned_to_its_endpoint() {
    let east_ok = Arc::new(AtomicBool::new(false));
    let inner = {
        let east_ok = east_ok.clone();
        Scripted::new(move |seen, _| {
            if seen.authority() == "east.example" && !east_ok.load(Ordering::SeqCst) {
                Status(503)
            } else {
                Status(200)
            }
        })
    };
    let failover = Failover::new([EAST, WEST], no_probes()).unwrap();
    let svc = FailoverLayer::new(failover.clone()).layer(inner.clone());
    // Two attempts of the call (a retry layer above would make them): both on east.
    for _ in 0..2 {
        let resp = send(&svc, post(EAST, KEYED_CREATE)).await.unwrap();
        assert_eq!(resp.status(), 503);
    }
    assert_eq!(authorities(&inner), ["east.example", "east.example"]);
    // Other calls still fail over; the third failure ejects east.
    assert_eq!(
        send(&svc, post(EAST, TOOLS_LIST)).await.unwrap().status(),
        200
    );
    assert!(!failover.health().endpoints[0].healthy);
    // East ejected: the pinned call fails at once, unsent, and says why.
    let err = send(&svc, post(EAST, KEYED_CREATE)).await.unwrap_err();
    let err = err.downcast::<Error>().unwrap();
    assert!(err.is_not_retryable(), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("may have been processed by http://east.example/mcp"),
        "{shown}"
    );
    assert_eq!(inner.seen().len(), 4, "nothing sent");
    // A different key is not pinned: it goes to west.
    let other = post(EAST, KEYED_CREATE);
    let (mut parts, body) = other.into_parts();
    parts
        .headers
        .insert("idempotency-key", "another-key".parse().unwrap());
    let other = http::Request::from_parts(parts, body);
    assert_eq!(send(&svc, other).await.unwrap().status(), 200);
    assert_eq!(authorities(&inner).last().unwrap(), "west.example");

    // East back (its ejection time passed; probation without probes) and answering: the
    // pinned call goes there, gets its answer, and the pin is released.
    east_ok.store(true, Ordering::SeqCst);
    tokio::time::advance(S(11)).await;
    assert_eq!(
        send(&svc, post(EAST, KEYED_CREATE)).await.unwrap().status(),
        200
    );
    assert_eq!(authorities(&inner).last().unwrap(), "east.example");
}
