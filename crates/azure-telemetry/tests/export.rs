//! The export pipeline against the fake Application Insights ingestion endpoint (testkit,
//! loopback): the redaction canary over everything exported, and a backend that is down
//! or hangs — the application never waits, memory stays bounded, and every item is
//! accounted for as exported, failed or dropped.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::time::Duration;

use azure_telemetry::{ConnectionString, LogFormat, Telemetry, TelemetryConfig, TelemetryGuard};
use testkit::azure::{DetachedFakeAppInsights, FakeAppInsights};

const IKEY: &str = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a";

/// The fake runs on a runtime of its own, so flushing (which blocks) can reach it.
fn fake() -> DetachedFakeAppInsights {
    let fake = FakeAppInsights::start_detached().unwrap();
    fake.accept_key(IKEY);
    fake
}

fn config(connection_string: &str) -> TelemetryConfig {
    TelemetryConfig::new("export-test")
        .with_application_insights(ConnectionString::parse(connection_string).unwrap())
        .with_log_format(LogFormat::Off)
        .with_export_filter("trace")
}

fn build(config: TelemetryConfig) -> (tracing::Dispatch, TelemetryGuard) {
    Telemetry::build(config).unwrap().into_parts()
}

const API_KEY: &str = "sk_live_canary_4f1d9c2b7e";
const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlLWNhbmFyeQ";
const CLIENT_SECRET: &str = "canary-client-secret-value";
const PASSWORD: &str = "canary-password-value";

#[test]
fn no_secret_value_leaves_the_process() {
    let fake = fake();
    let (dispatch, guard) = build(config(&fake.connection_string(IKEY)).redact_value(API_KEY));
    tracing::dispatcher::with_default(&dispatch, || {
        let span = tracing::info_span!(
            "mcp.client.request",
            otel.kind = "client",
            api_key = API_KEY,
            client_secret = CLIENT_SECRET,
            http.request.header.authorization = format!("Bearer {JWT}"),
            note = format!("called with key {API_KEY}"),
        );
        let _entered = span.enter();
        tracing::info!(password = PASSWORD, "login attempt");
        tracing::warn!(token = %JWT, "token refused");
        tracing::error!("request failed: Authorization: Bearer {JWT} for {API_KEY}");
        tracing::info!(
            connection =
                "InstrumentationKey=3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a;IngestionEndpoint=x",
            "configured"
        );
    });
    guard.shutdown().unwrap();
    let envelopes = fake.envelopes();
    assert!(
        envelopes
            .iter()
            .any(|e| e["data"]["baseType"] == "RemoteDependencyData"),
        "the span was exported"
    );
    assert_eq!(
        envelopes
            .iter()
            .filter(|e| e["data"]["baseType"] == "MessageData")
            .count(),
        4,
        "every event was exported"
    );
    let exported = serde_json::to_string(&envelopes).unwrap();
    for canary in [
        API_KEY,
        JWT,
        CLIENT_SECRET,
        PASSWORD,
        "eyJzdWIiOiJjYW5hcnkifQ",
        "InstrumentationKey=3d2c",
    ] {
        assert!(
            !exported.contains(canary),
            "{canary} was exported: {exported}"
        );
    }
    assert!(exported.contains("[redacted]"));
    assert!(
        exported.contains("login attempt"),
        "messages themselves survive"
    );
}

fn emit(dispatch: &tracing::Dispatch, n: usize) {
    tracing::dispatcher::with_default(dispatch, || {
        for i in 0..n {
            let span = tracing::info_span!("mcp.client.request", otel.kind = "client", i);
            let _entered = span.enter();
            tracing::info!(i, "work");
        }
    });
}

fn accounted(guard: &TelemetryGuard) -> (u64, u64) {
    let s = guard.stats();
    (
        s.spans_exported + s.spans_failed + s.spans_dropped,
        s.logs_exported + s.logs_failed + s.logs_dropped,
    )
}

#[test]
fn an_unreachable_backend_never_blocks_and_drops_with_a_counter() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cs = format!("InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:{port}/");
    let (dispatch, guard) = build(config(&cs).with_queue_capacity(64).with_timeouts(
        Duration::from_millis(200),
        Duration::from_millis(300),
        Duration::from_millis(500),
    ));
    emit(&dispatch, 5_000);
    let stats = guard.stats();
    // The queue holds at most 64 spans: the rest were dropped at once, not waited for.
    assert!(stats.spans_dropped >= 5_000 - 64 * 2, "{stats:?}");
    assert_eq!(stats.spans_exported, 0);
    let _ = guard.flush();
    // Dropping the guard gives up after the shutdown timeout; the stats account for all.
    let stats = guard.stats();
    drop(guard);
    assert_eq!(stats.logs_exported, 0, "{stats:?}");
}

#[test]
fn a_hanging_backend_never_blocks_and_every_item_is_accounted_for() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    listener.set_nonblocking(true).unwrap();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        while stop_rx.try_recv().is_err() {
            match listener.accept() {
                Ok((socket, _)) => held.push(socket),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    let cs = format!("InstrumentationKey={IKEY};IngestionEndpoint=http://127.0.0.1:{port}/");
    let telemetry = Telemetry::build(
        config(&cs)
            .with_queue_capacity(32)
            .with_export_intervals(Duration::from_millis(10), Duration::from_secs(3600))
            .with_timeouts(
                Duration::from_millis(100),
                Duration::from_millis(150),
                Duration::from_millis(300),
            ),
    )
    .unwrap();
    let (dispatch, guard) = telemetry.into_parts();
    emit(&dispatch, 2_000);
    std::thread::sleep(Duration::from_millis(400));
    emit(&dispatch, 2_000);
    assert!(guard.flush().is_err(), "nothing can be delivered");
    let stats = guard.stats();
    assert_eq!(stats.spans_exported, 0, "{stats:?}");
    assert!(
        stats.spans_failed > 0,
        "exports were attempted and failed: {stats:?}"
    );
    assert!(stats.spans_dropped > 0, "{stats:?}");
    let (spans, logs) = accounted(&guard);
    // Everything emitted is exported, failed or dropped — or still in the bounded queue.
    assert!(spans <= 4_000 && spans + 32 + 32 >= 4_000, "{stats:?}");
    assert!(logs <= 4_000 && logs + 32 + 32 >= 4_000, "{stats:?}");
    let _ = guard.shutdown();
    stop_tx.send(()).unwrap();
    holder.join().unwrap();
}

#[test]
fn the_backend_recovering_gets_what_comes_after() {
    let fake = fake();
    // 503 with Retry-After for the first uploads: the exporter retries within its deadline.
    fake.fail_next(2, 503);
    let (dispatch, guard) = build(config(&fake.connection_string(IKEY)));
    emit(&dispatch, 10);
    guard.flush().unwrap();
    let stats = guard.stats();
    assert_eq!(
        (stats.spans_exported, stats.logs_exported),
        (10, 10),
        "{stats:?}"
    );
    assert_eq!(fake.envelopes_of("RemoteDependencyData").len(), 10);
    drop(guard);
}
