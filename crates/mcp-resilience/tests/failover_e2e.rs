//! Losing the primary region under load, end to end on loopback (issue #5's failover
//! measurement).
//!
//! # What is real
//!
//! - Two **real Scheduler servers** (`scheduler_server`, auth off, each with its own in-memory
//!   SQLite store: the regions share nothing), on `127.0.0.1:0`, serving MCP statelessly
//!   (`sessions: false`, protocol 2026-07-28) with JSON answers, so every request stands alone
//!   and can be answered by either region. (Re-initializing a session after a switch is
//!   covered by `failover_real.rs`.)
//! - A **real fault proxy** (`testkit::FaultProxy`) in front of the primary, over real TCP
//!   sockets: resets before the primary sees a request, resets after it answered (the "maybe
//!   processed" case), a `503` burst with `Retry-After`, and a blackhole after which the
//!   primary server is shut down (the region is gone).
//! - The **real client stack**: `McpClient` → `HttpTransport::with_service` → `RetryLayer` →
//!   `FailoverLayer` (`[primary via the proxy, secondary]`, probing `GET /ping`) →
//!   `CircuitBreakerLayer` → the pooled `HttpClient`. Short probe intervals, timeouts and
//!   ejections keep each drill to a few seconds of real time (real sockets: tokio's paused
//!   time does not apply; every drill is bounded by `tokio::time::timeout`, and no sleep is
//!   used as an assertion).
//!
//! # What is measured
//!
//! 32 concurrent tasks each make 16 `scheduleConversation` calls, every call with its own
//! `idempotencyKey`; when half of the 512 calls have completed, the fault is switched on.
//! Each drill asserts and prints:
//!
//! - **no key is created in both regions**: the stores are independent, so an idempotency
//!   key cannot deduplicate between them; failover pins a keyed call whose attempt may have
//!   been processed (a reset after the primary answered, a call in flight when the primary
//!   went down) to the primary, and never sends it to the secondary;
//! - **within one store** a key never creates twice (the server's idempotency check), and the
//!   id each caller got is the conversation its key created;
//! - **idempotent calls never fail**: after each create the caller lists the tools, and
//!   every one of those calls succeeds (failover moves them on within the call);
//! - a create fails for the caller only when it may have been processed by the primary: the
//!   503 burst (`Retry-After`: the origin refused, nothing processed) has no caller-visible
//!   error at all; with connection resets (before or after the primary saw the request: the
//!   client cannot tell them apart) and the lost region, a create either succeeds on the
//!   primary (a pinned retry that got through) or fails with the pin's `is_not_retryable`
//!   error naming the primary, at most one per fault the proxy injected (resets) or per task
//!   (the lost region), and is never in the secondary's store;
//! - the recovery time, from the fault's injection to the first call answered by the
//!   secondary, and the failover health snapshot (ejections, switches, probe results).
//!
//! Run with `--nocapture` to see the figures.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use mcp_resilience::{
    Backoff, BreakerConfig, CircuitBreakerLayer, CircuitBreakers, Failover, FailoverConfig,
    FailoverLayer, RetryLayer, RetryPolicy,
};
use mcp_transport::http::{HttpClient, HttpConfig};
use mcp_transport::{CallOptions, HttpTransport, HttpTransportConfig, McpClient, ProtocolChoice};
use scheduler_server::clock::Clock;
use scheduler_server::config::ServerConfig;
use scheduler_server::server::{Parts, RunningServer, start_with};
use scheduler_server::store::Store;
use serde_json::json;
use testkit::fault_proxy::{Fault, FaultHandle, FaultProxy};
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::ServiceBuilder;

/// Concurrent callers.
const TASKS: usize = 32;
/// Calls per caller, one after the other.
const CALLS_PER_TASK: usize = 16;
/// Every logical call of a drill.
const CALLS: usize = TASKS * CALLS_PER_TASK;
/// How long the pooled client waits for a response head (a blackholed request fails over
/// after this).
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(750);
/// Bound on a whole drill.
const DRILL_LIMIT: Duration = Duration::from_secs(90);

/// One region: a real Scheduler server and its store.
struct Region {
    server: Option<RunningServer>,
    store: Arc<dyn Store>,
    clock: Clock,
}

async fn region() -> Region {
    let mut config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: ":memory:".to_owned(),
        // Stateless with JSON answers: any region can answer any request, and a reset after
        // the upstream's answer fires on a response that ends.
        sessions: false,
        ..ServerConfig::default()
    };
    config.auth.required = false;
    let parts = Parts::from_config(&config).unwrap();
    let (store, clock) = (parts.store.clone(), parts.clock.clone());
    let server = start_with(config, parts).await.unwrap();
    Region {
        server: Some(server),
        store,
        clock,
    }
}

impl Region {
    fn url(&self) -> String {
        self.server.as_ref().unwrap().url().to_owned()
    }

    /// Conversation ids by idempotency key, read from the store itself.
    async fn ids_by_key(&self) -> HashMap<String, Vec<String>> {
        let backup = self.store.export((self.clock)()).await.unwrap();
        let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
        for c in backup.conversations {
            let key = c
                .idempotency_key
                .unwrap_or_else(|| panic!("conversation {} has no key", c.id));
            by_key.entry(key).or_default().push(c.id);
        }
        by_key
    }
}

/// Switches the proxy's fault on when half of the calls have completed.
struct Trigger {
    completed: AtomicUsize,
    fault: Fault,
    proxy: FaultHandle,
    injected_at: OnceLock<Instant>,
    injected: Notify,
}

impl Trigger {
    fn call_completed(&self) {
        if self.completed.fetch_add(1, Ordering::SeqCst) + 1 == CALLS / 2 {
            // The instant first: no request can meet the fault before it.
            let _ = self.injected_at.set(Instant::now());
            self.proxy.set_fault(self.fault.clone());
            self.injected.notify_one();
        }
    }
}

/// A logical call that succeeded: its key, the conversation id it got, when it returned.
struct Outcome {
    key: String,
    id: String,
    done: Instant,
}

/// What one caller saw: created conversations, failed creates, failed idempotent calls.
type Seen = (Vec<Outcome>, Vec<String>, Vec<String>);

async fn caller(
    client: McpClient,
    drill: &'static str,
    task: usize,
    trigger: Arc<Trigger>,
) -> Seen {
    let (mut outcomes, mut errors, mut read_errors) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..CALLS_PER_TASK {
        let key = format!("{drill}-{task:02}-{i:02}");
        let args = json!({
            "topic": format!("failover drill {drill} {task}/{i}"),
            "participants": ["ana@contoso.example", "bo@contoso.example"],
            "scheduledTime": "2099-03-01T09:30:00+01:00",
            "idempotencyKey": key,
        });
        match client
            .call_tool("scheduleConversation", args, CallOptions::new())
            .await
        {
            Err(e) => errors.push(format!("{key}: {e} ({e:?})")),
            Ok(r) if r.is_error => {
                errors.push(format!("{key}: tool error {:?}", r.structured_content));
            }
            Ok(r) => match r
                .structured_content
                .as_ref()
                .and_then(|s| s["conversationId"].as_str())
            {
                Some(id) => outcomes.push(Outcome {
                    key,
                    id: id.to_owned(),
                    done: Instant::now(),
                }),
                None => errors.push(format!("{key}: no conversationId in {r:?}")),
            },
        }
        // An idempotent call: it may go to any region, any number of times.
        if let Err(e) = client.list_tools().await {
            read_errors.push(format!("tools/list after call {task}/{i}: {e} ({e:?})"));
        }
        trigger.call_completed();
    }
    (outcomes, errors, read_errors)
}

/// Runs one drill on its own two-thread runtime: `fault` on the primary's proxy midway
/// through the load; with `lose_primary`, the primary server is also shut down right after.
/// Drills run one at a time, so their timings do not include each other's load.
fn drill(name: &'static str, fault: Fault, lose_primary: bool) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(DRILL_LIMIT, run(name, fault, lose_primary))
                .await
                .unwrap_or_else(|_| panic!("drill `{name}` did not finish within {DRILL_LIMIT:?}"));
        });
}

async fn run(name: &'static str, fault: Fault, lose_primary: bool) {
    let mut primary = region().await;
    let secondary = region().await;
    let proxy = FaultProxy::start(primary.server.as_ref().unwrap().addr())
        .await
        .unwrap();

    // The regions' base URLs: the probes go to `{base}/ping`, the MCP traffic to
    // `{base}/mcp` (the transport's path, kept by failover).
    let failover = Failover::new(
        [proxy.url(), secondary.url()],
        FailoverConfig::new()
            .probe_interval(Some(Duration::from_millis(50)))
            .probe_timeout(Duration::from_millis(250))
            .consecutive_failures(3)
            .ejection_time(Duration::from_millis(500), Duration::from_secs(2)),
    )
    .unwrap();
    let breakers = CircuitBreakers::new(
        BreakerConfig::new().open_duration(Duration::from_millis(500), Duration::from_secs(2)),
    );
    let policy = RetryPolicy::new()
        .backoff(
            Backoff::new()
                .base(Duration::from_millis(20))
                .cap(Duration::from_millis(250))
                .max_retries(6),
        )
        .attempt_timeout(Some(Duration::from_secs(5)))
        .deadline(Some(Duration::from_secs(30)));
    let budget = policy.retry_budget().cloned().unwrap();
    let mut http = HttpConfig::default();
    http.response_timeout = RESPONSE_TIMEOUT;
    http.connect_timeout = Duration::from_secs(1);
    http.max_idle_per_host = 2 * TASKS;
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(FailoverLayer::new(failover.clone()))
        .layer(CircuitBreakerLayer::new(breakers.clone()))
        .service(HttpClient::new(&http).unwrap());
    let mut transport_config = HttpTransportConfig::default();
    transport_config.open_get_stream = false;
    let transport =
        HttpTransport::with_service(&format!("{}/mcp", proxy.url()), transport_config, stack)
            .unwrap();
    let client = McpClient::builder()
        .protocol(ProtocolChoice::Version("2026-07-28".into()))
        .default_timeout(Duration::from_secs(45))
        .connect(transport)
        .await
        .unwrap();
    assert!(client.is_stateless());
    client.list_tools().await.unwrap();

    let trigger = Arc::new(Trigger {
        completed: AtomicUsize::new(0),
        fault: fault.clone(),
        proxy: proxy.handle(),
        injected_at: OnceLock::new(),
        injected: Notify::new(),
    });
    let started = Instant::now();
    let callers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(caller(client.clone(), name, task, trigger.clone())))
        .collect();
    trigger.injected.notified().await;
    let t0 = *trigger.injected_at.get().unwrap();
    if lose_primary {
        // The region is gone: its server stops (graceful shutdown, with the calls the proxy
        // let through before the blackhole still in flight).
        let server = primary.server.take().unwrap();
        server.shutdown().await.unwrap();
    }
    let (mut outcomes, mut errors, mut read_errors) = (Vec::new(), Vec::new(), Vec::new());
    for c in callers {
        let (o, e, r) = c.await.unwrap();
        outcomes.extend(o);
        errors.extend(e);
        read_errors.extend(r);
    }
    let elapsed = started.elapsed();

    assert!(
        read_errors.is_empty(),
        "{name}: {} idempotent calls failed for the caller, e.g. {:#?}",
        read_errors.len(),
        &read_errors[..read_errors.len().min(5)]
    );
    // Every create succeeded, or failed because it may have been processed by the primary
    // and must not be created again on the secondary.
    assert_eq!(outcomes.len() + errors.len(), CALLS);
    let maybe_processed = matches!(
        fault,
        Fault::ResetAfterUpstream | Fault::ResetBeforeUpstream
    ) || lose_primary;
    if !maybe_processed {
        assert!(
            errors.is_empty(),
            "{name}: {} of {CALLS} calls failed for the caller, e.g. {:#?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
    }
    for e in &errors {
        assert!(
            e.contains("may have been processed by") && e.contains(&proxy.url()),
            "{name}: a caller-visible error that is not the pin's: {e}"
        );
    }

    // What each store holds, read from the stores.
    let in_primary = primary.ids_by_key().await;
    let in_secondary = secondary.ids_by_key().await;
    for (region, by_key) in [("primary", &in_primary), ("secondary", &in_secondary)] {
        let repeated: Vec<_> = by_key.iter().filter(|(_, ids)| ids.len() > 1).collect();
        assert!(
            repeated.is_empty(),
            "{name}: a key created twice within the {region} store: {repeated:?}"
        );
    }
    let called: HashSet<&str> = outcomes.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(
        called.len(),
        outcomes.len(),
        "{name}: keys are unique per call"
    );
    let failed: HashSet<&str> = errors
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    for key in in_primary.keys().chain(in_secondary.keys()) {
        assert!(
            called.contains(key.as_str()) || failed.contains(key.as_str()),
            "{name}: a stray create {key}"
        );
    }
    for key in &failed {
        assert!(
            !in_secondary.contains_key(*key),
            "{name}: {key} failed for the caller yet was created on the secondary"
        );
    }
    let secondary_ids: HashSet<&str> = in_secondary
        .values()
        .flatten()
        .map(String::as_str)
        .collect();
    for o in &outcomes {
        let created: Vec<&String> = in_primary
            .get(&o.key)
            .into_iter()
            .chain(in_secondary.get(&o.key))
            .flatten()
            .collect();
        assert!(
            created.contains(&&o.id),
            "{name}: {} got conversation {}, but its key created {created:?}",
            o.key,
            o.id
        );
    }

    // Across the regions.
    let in_both: Vec<&String> = in_primary
        .keys()
        .filter(|k| in_secondary.contains_key(*k))
        .collect();
    let stats = proxy.stats();
    // Pass-through requests the primary never answered (the proxy answered `502`); a request
    // reset after the upstream's answer counts as both forwarded and faulted.
    let unanswered = if fault == Fault::ResetAfterUpstream {
        stats.requests.saturating_sub(stats.forwarded)
    } else {
        stats
            .requests
            .saturating_sub(stats.faults + stats.forwarded)
    };
    assert!(
        in_both.is_empty(),
        "{name}: keys created in both regions: {in_both:?}"
    );
    if matches!(
        fault,
        Fault::ResetAfterUpstream | Fault::ResetBeforeUpstream
    ) {
        assert!(
            errors.len() as u64 <= stats.faults,
            "{name}: {} calls failed, more than the {} faults injected",
            errors.len(),
            stats.faults
        );
    } else if lose_primary {
        // A task has one call in flight when the primary goes down.
        assert!(
            errors.len() <= TASKS,
            "{name}: {} calls failed",
            errors.len()
        );
    }
    // Recovery: from the injection to the first call answered by the secondary.
    let on_secondary = |o: &&Outcome| secondary_ids.contains(o.id.as_str());
    let before_fault = outcomes
        .iter()
        .filter(on_secondary)
        .filter(|o| o.done < t0)
        .count();
    let first_on_secondary = outcomes
        .iter()
        .filter(on_secondary)
        .map(|o| o.done)
        .filter(|done| *done >= t0)
        .min()
        .unwrap_or_else(|| panic!("{name}: no call was answered by the secondary"));
    let recovery = first_on_secondary.saturating_duration_since(t0);
    let served_by_secondary = outcomes.iter().filter(on_secondary).count();

    let health = failover.health();
    let primary_breaker = breakers.get(&proxy.url()).state();
    eprintln!(
        "failover drill `{name}`: {CALLS} creates and {CALLS} tools/list calls ({TASKS} tasks x \
         {CALLS_PER_TASK} each) in {elapsed:.2?}, {} caller-visible errors on creates, 0 on \
         tools/list\n  \
         fault {fault:?} injected after {} completed calls{}\n  \
         proxy: {} requests, {} answered by the primary, {} faults injected, \
         {unanswered} left unanswered (502)\n  \
         answered by the primary {}, by the secondary {} ({before_fault} before the fault)\n  \
         keys created twice within one store: 0; keys created in both regions: {}; \
         calls failed as pinned to the primary: {}\n  \
         recovery (fault -> first answer from the secondary): {recovery:.2?}\n  \
         primary breaker: {primary_breaker:?}; retry budget left: {} tokens\n  \
         failover health: {health:#?}",
        errors.len(),
        CALLS / 2,
        if lose_primary {
            "; primary server shut down"
        } else {
            ""
        },
        stats.requests,
        stats.forwarded,
        stats.faults,
        CALLS - served_by_secondary,
        served_by_secondary,
        in_both.len(),
        errors.len(),
        budget.available(),
    );

    assert!(
        health.endpoints[0].ejections >= 1,
        "{name}: the primary was never ejected: {health:?}"
    );
    assert!(
        health.endpoints[1].healthy,
        "{name}: the secondary is not healthy: {health:?}"
    );
    assert!(health.switches >= 1, "{name}: no switch: {health:?}");
    drop(client);
}

#[test]
fn drill_resets_before_the_primary_sees_requests() {
    drill("reset-before", Fault::ResetBeforeUpstream, false);
}

#[test]
fn drill_resets_after_the_primary_processed_requests() {
    drill("reset-after", Fault::ResetAfterUpstream, false);
}

#[test]
fn drill_503_burst_with_retry_after() {
    drill("503-burst", Fault::unavailable(2 * TASKS as u32, 1), false);
}

#[test]
fn drill_losing_the_primary_region() {
    drill("region-lost", Fault::Blackhole, true);
}
