//! Durability and races, on real servers on loopback and real SQLite stores:
//!
//! - a restart with pending conversations loses none of them, and the ones that were being
//!   dispatched when the server went down run again after it comes back;
//! - a dispatcher that crashes mid-run holds its claim only until the lease expires; another
//!   dispatcher then runs the conversation, and the crashed run's late result is dropped
//!   (driven by [`Dispatcher::tick`] and a [`ManualClock`], so nothing waits for a lease);
//! - concurrent cancels and reschedules of one conversation end in one consistent state, and
//!   a conversation cancelled while running keeps its cancellation when the run ends;
//! - 64 concurrent `scheduleConversation` calls with one idempotency key create exactly one
//!   conversation.
//!
//! Every test is bounded ([`TEST_LIMIT`]); waits poll in small steps up to a limit.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use mcp_transport::{CallOptions, CallToolResult, HttpTransport, McpClient, ProtocolChoice};
use scheduler::domain::{ConversationStatus, ScheduleConversation, ValidSchedule};
use scheduler_server::auth::ManualClock;
use scheduler_server::clock::{Clock, system_clock};
use scheduler_server::config::ServerConfig;
use scheduler_server::dispatcher::{ConversationRunner, Dispatcher, DispatcherConfig};
use scheduler_server::server::{Parts, RunningServer, start_with};
use scheduler_server::store::{
    BoxFuture, Conversation, RunOutcome, SqliteStore, Store, StoreError,
};
use serde_json::{Value, json};
use tokio::sync::{Barrier, Notify, Semaphore, mpsc};

/// The most any test here may take.
const TEST_LIMIT: Duration = Duration::from_secs(90);

/// How long a wait for a state polls, and how often.
const WAIT_LIMIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// Runs a test body, failing it if it takes longer than [`TEST_LIMIT`].
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_LIMIT, body)
        .await
        .expect("test ran over its time limit")
}

/// Polls `probe` until it gives a value, for at most [`WAIT_LIMIT`].
async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---- runners ----------------------------------------------------------------------------

/// A runner whose runs never end: the dispatcher running them has, in effect, crashed. Each
/// start is announced on a channel.
struct Hang {
    started: mpsc::UnboundedSender<String>,
}

impl Hang {
    fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<String>) {
        let (started, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { started }), rx)
    }
}

impl ConversationRunner for Hang {
    fn run<'a>(&'a self, c: &'a Conversation) -> BoxFuture<'a, Result<(), String>> {
        let _ = self.started.send(c.id.clone());
        Box::pin(std::future::pending())
    }
}

/// A runner that completes every run and counts runs per conversation.
#[derive(Default)]
struct Counting {
    runs: Mutex<HashMap<String, u32>>,
}

impl Counting {
    fn runs(&self, id: &str) -> u32 {
        self.runs.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

impl ConversationRunner for Counting {
    fn run<'a>(&'a self, c: &'a Conversation) -> BoxFuture<'a, Result<(), String>> {
        *self.runs.lock().unwrap().entry(c.id.clone()).or_default() += 1;
        Box::pin(async { Ok(()) })
    }
}

/// A runner whose runs wait until released, then succeed. Each start is announced.
struct Gate {
    started: mpsc::UnboundedSender<String>,
    release: Arc<Notify>,
}

impl ConversationRunner for Gate {
    fn run<'a>(&'a self, c: &'a Conversation) -> BoxFuture<'a, Result<(), String>> {
        let _ = self.started.send(c.id.clone());
        let release = self.release.clone();
        Box::pin(async move {
            release.notified().await;
            Ok(())
        })
    }
}

// ---- servers and clients ----------------------------------------------------------------

/// A loopback server on `database` without auth, with `runner` and `clock`.
async fn serve(
    database: &Path,
    runner: Arc<dyn ConversationRunner>,
    clock: Clock,
    dispatcher: DispatcherConfig,
) -> RunningServer {
    let mut config = ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: database.display().to_string(),
        dispatcher,
        ..ServerConfig::default()
    };
    config.auth.required = false;
    let parts = Parts {
        store: Arc::new(SqliteStore::open(database).unwrap()),
        runner,
        clock,
    };
    start_with(config, parts).await.unwrap()
}

fn dispatcher_config() -> DispatcherConfig {
    DispatcherConfig {
        idle_poll_ms: 20,
        shutdown_grace_ms: 100,
        ..DispatcherConfig::default()
    }
}

async fn connect(server: &RunningServer, version: &str) -> McpClient {
    McpClient::builder()
        .protocol(ProtocolChoice::Version(version.into()))
        .default_timeout(Duration::from_secs(20))
        .connect(HttpTransport::new(&server.mcp_url()).unwrap())
        .await
        .unwrap()
}

async fn call(c: &McpClient, tool: &str, args: Value) -> CallToolResult {
    c.call_tool(tool, args, CallOptions::new()).await.unwrap()
}

fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

/// `now + minutes`, in whole seconds (the store keeps milliseconds), as RFC 3339.
fn in_minutes(m: i64) -> String {
    Timestamp::from_second(Timestamp::now().as_second() + m * 60)
        .unwrap()
        .to_string()
}

/// A clock `ahead` of the system clock (time that passed while a server was down).
fn clock_ahead(ahead: Duration) -> Clock {
    let ahead = SignedDuration::try_from(ahead).unwrap();
    Arc::new(move || Timestamp::now().checked_add(ahead).unwrap())
}

async fn status(c: &McpClient, id: &str) -> Value {
    structured(&call(c, "getConversationStatus", json!({"conversationId": id})).await)
}

/// Arguments of a valid schedule request.
fn schedule_args(topic: &str, when: &str) -> Value {
    json!({"topic": topic, "participants": ["ana@contoso.example"], "scheduledTime": when})
}

fn valid(topic: &str, when: Timestamp) -> ValidSchedule {
    ScheduleConversation {
        topic: topic.into(),
        participants: vec!["ana@contoso.example".into()],
        scheduled_time: when.to_string(),
        timezone: None,
        duration_minutes: None,
        metadata: None,
        idempotency_key: None,
    }
    .validate()
    .unwrap()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_900_000_000).unwrap()
}

// ---- (a) restart with pending conversations ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_mid_dispatch_loses_nothing_and_runs_the_due_ones_after() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("scheduler.db");
        // The first server's runs never end: shutting it down leaves them claimed (leased),
        // as a crash would.
        let (hang, mut started) = Hang::new();
        let first = serve(&db, hang, system_clock(), dispatcher_config()).await;
        let c = connect(&first, "2025-11-25").await;
        let mut future = HashSet::new();
        for i in 0..50 {
            let r = call(
                &c,
                "scheduleConversation",
                schedule_args(&format!("later {i}"), &in_minutes(60 + i)),
            )
            .await;
            assert!(!r.is_error, "{}", r.text());
            future.insert(
                structured(&r)["conversationId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        let mut due = HashSet::new();
        for i in 0..5 {
            let r = call(
                &c,
                "scheduleConversation",
                schedule_args(&format!("now {i}"), &in_minutes(-1)),
            )
            .await;
            due.insert(
                structured(&r)["conversationId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        // Mid-dispatch: every due conversation is running on the first server.
        let mut running = HashSet::new();
        while running.len() < due.len() {
            let id = tokio::time::timeout(WAIT_LIMIT, started.recv())
                .await
                .expect("the due conversations start")
                .unwrap();
            running.insert(id);
        }
        assert_eq!(running, due);
        for id in &due {
            assert_eq!(status(&c, id).await["status"], "running");
        }
        c.close().await.unwrap();
        first.shutdown().await.unwrap();

        // The second server comes up on the same file after the first one's leases (60 s by
        // default) have run out: its clock is two minutes ahead.
        let counting = Arc::new(Counting::default());
        let second = serve(
            &db,
            counting.clone(),
            clock_ahead(Duration::from_secs(120)),
            dispatcher_config(),
        )
        .await;
        let c = connect(&second, "2026-07-28").await;
        let client = &c;
        for id in &due {
            let s = wait_for(
                "a due conversation to complete after the restart",
                || async move {
                    let s = status(client, id).await;
                    (s["status"] == "completed").then_some(s)
                },
            )
            .await;
            assert_eq!(
                s["attempts"], 2,
                "one crashed run, one after the restart: {s}"
            );
            assert_eq!(counting.runs(id), 1);
        }
        let page = structured(&call(&c, "listConversations", json!({"limit": 500})).await);
        let listed: HashMap<String, Value> = page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["conversationId"].as_str().unwrap().to_owned(), x.clone()))
            .collect();
        assert_eq!(listed.len(), 55, "nothing lost, nothing duplicated");
        for id in &future {
            let x = &listed[id];
            assert_eq!(x["status"], "scheduled", "{x}");
            assert_eq!(x["attempts"], 0, "{x}");
            assert_eq!(counting.runs(id), 0);
        }
        assert!(due.iter().all(|id| listed[id]["status"] == "completed"));
        c.close().await.unwrap();
        second.shutdown().await.unwrap();
    })
    .await;
}

// ---- (b) a crash mid-run ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_run_is_taken_over_when_its_lease_expires() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("scheduler.db")).unwrap());
        let manual = ManualClock::new(t0());
        let config = DispatcherConfig {
            lease_ms: 30_000,
            ..DispatcherConfig::default()
        };
        let id = new_id();
        store
            .schedule(id.clone(), &valid("crash", t0()), None, t0())
            .await
            .unwrap();

        // The first dispatcher claims it and "crashes": its run never ends.
        let (hang, mut started) = Hang::new();
        let first = Dispatcher::new(
            store.clone(),
            hang,
            config.clone(),
            manual.clock(),
            Arc::new(Notify::new()),
        );
        assert_eq!(first.tick(&Arc::new(Semaphore::new(4))).await, 1);
        assert_eq!(started.recv().await.unwrap(), id);
        let c = store.get(&id).await.unwrap();
        assert_eq!(c.status, ConversationStatus::Running);
        assert_eq!(c.attempts, 1);
        assert_eq!(c.lease_owner.as_deref(), Some(first.owner()));

        // A second dispatcher cannot take it while the lease holds...
        let counting = Arc::new(Counting::default());
        let second = Dispatcher::new(
            store.clone(),
            counting.clone(),
            config.clone(),
            manual.clock(),
            Arc::new(Notify::new()),
        );
        let slots = Arc::new(Semaphore::new(4));
        manual.advance(Duration::from_secs(29));
        assert_eq!(second.tick(&slots).await, 0, "the lease still holds");
        // ...and takes it once the lease has expired.
        manual.advance(Duration::from_secs(2));
        assert_eq!(second.tick(&slots).await, 1);
        let (store_ref, id_ref) = (&store, &id);
        let done = wait_for("the second dispatcher's run to complete", || async move {
            let c = store_ref.get(id_ref).await.unwrap();
            (c.status == ConversationStatus::Completed).then_some(c)
        })
        .await;
        assert_eq!(done.attempts, 2);
        assert_eq!(counting.runs(&id), 1);
        assert_eq!(done.lease_owner, None);

        // If the crashed run ever reports, its result is dropped.
        let late = store
            .finish_run(
                &id,
                first.owner(),
                RunOutcome::Failed {
                    error: "late".into(),
                },
                manual.now(),
            )
            .await
            .unwrap();
        assert!(!late, "a run that lost its lease cannot record a result");
        let after = store.get(&id).await.unwrap();
        assert_eq!(after.status, ConversationStatus::Completed);
        assert_eq!(after.last_error, None);
    })
    .await;
}

// ---- (c) cancel / reschedule races ------------------------------------------------------

/// Whether a store call ended the only acceptable ways: success, or an invalid transition.
fn allowed<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Ok(_) | Err(StoreError::InvalidTransition { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_and_reschedules_in_the_store_end_consistently() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("scheduler.db")).unwrap());
        let start = t0();
        for round in 0..10i64 {
            let id = new_id();
            store
                .schedule(
                    id.clone(),
                    &valid(&format!("race {round}"), start),
                    None,
                    start,
                )
                .await
                .unwrap();
            // Everyone waits at the barrier, then all 32 calls go at once.
            let barrier = Arc::new(Barrier::new(32));
            let mut tasks = Vec::new();
            for i in 0..32i64 {
                let store = store.clone();
                let id = id.clone();
                let barrier = barrier.clone();
                let when = start.checked_add(SignedDuration::from_mins(i + 1)).unwrap();
                // Half cancel, half reschedule; which half the last task to reach the
                // barrier (the one that goes first) is in alternates by round.
                let cancel = (i + round) % 2 == 1;
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    if cancel {
                        (None, store.cancel(&id, start).await)
                    } else {
                        (Some(when), store.reschedule(&id, when, start).await)
                    }
                }));
            }
            let mut cancels = 0;
            let mut moved_to = Vec::new();
            for t in tasks {
                let (when, r) = t.await.unwrap();
                assert!(allowed(&r), "round {round}: {:?}", r.err());
                if let Ok(c) = r {
                    match when {
                        None => {
                            assert_eq!(c.status, ConversationStatus::Cancelled);
                            cancels += 1;
                        }
                        Some(when) => {
                            assert_eq!(c.status, ConversationStatus::Scheduled);
                            assert_eq!(c.scheduled_time, when);
                            moved_to.push(when);
                        }
                    }
                }
            }
            assert_eq!(cancels, 1, "round {round}: exactly one cancel wins");
            let last = store.get(&id).await.unwrap();
            assert_eq!(last.status, ConversationStatus::Cancelled);
            assert!(
                moved_to.contains(&last.scheduled_time)
                    || (moved_to.is_empty() && last.scheduled_time == start),
                "round {round}: the time is the last successful reschedule's"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cancels_and_reschedules_through_mcp_end_consistently() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(
            &dir.path().join("scheduler.db"),
            Arc::new(Counting::default()),
            system_clock(),
            dispatcher_config(),
        )
        .await;
        let c = Arc::new(connect(&server, "2025-11-25").await);
        let original = in_minutes(60);
        let r = call(&c, "scheduleConversation", schedule_args("race", &original)).await;
        let id = structured(&r)["conversationId"]
            .as_str()
            .unwrap()
            .to_owned();
        let barrier = Arc::new(Barrier::new(32));
        let mut tasks = Vec::new();
        for i in 0..32i64 {
            let c = c.clone();
            let id = id.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                if i % 2 == 0 {
                    let r = call(&c, "cancelConversation", json!({"conversationId": id})).await;
                    (None, r)
                } else {
                    let when = in_minutes(120 + i);
                    let args = json!({"conversationId": id, "scheduledTime": when});
                    (Some(when), call(&c, "rescheduleConversation", args).await)
                }
            }));
        }
        let mut cancels = 0;
        let mut moved_to = Vec::new();
        for t in tasks {
            let (when, r) = t.await.unwrap();
            let s = structured(&r);
            if r.is_error {
                assert_eq!(s["error"], "invalid_transition", "{}", r.text());
                continue;
            }
            match when {
                None => {
                    assert_eq!(s["status"], "cancelled");
                    cancels += 1;
                }
                Some(when) => {
                    assert_eq!(s["status"], "scheduled");
                    let answered: Timestamp = s["scheduledTime"].as_str().unwrap().parse().unwrap();
                    assert_eq!(answered, when.parse::<Timestamp>().unwrap());
                    moved_to.push(answered);
                }
            }
        }
        assert_eq!(cancels, 1, "exactly one cancel wins");
        let last = status(&c, &id).await;
        assert_eq!(last["status"], "cancelled");
        let time: Timestamp = last["scheduledTime"].as_str().unwrap().parse().unwrap();
        assert!(
            moved_to.contains(&time)
                || (moved_to.is_empty() && time == original.parse::<Timestamp>().unwrap()),
            "the time is the last successful reschedule's: {last}"
        );
        c.close().await.unwrap();
        server.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ending_after_a_cancel_does_not_undo_it() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(dir.path().join("scheduler.db")).unwrap());
        let now = t0();

        // In the store: a claimed conversation is cancelled; the run's result is dropped.
        let id = new_id();
        store
            .schedule(id.clone(), &valid("cancel me", now), None, now)
            .await
            .unwrap();
        let claimed = store
            .claim_due("dispatcher-a", now, Duration::from_secs(30), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let cancelled = store.cancel(&id, now).await.unwrap();
        assert_eq!(cancelled.status, ConversationStatus::Cancelled);
        for outcome in [
            RunOutcome::Completed,
            RunOutcome::Failed {
                error: "boom".into(),
            },
            RunOutcome::Retry {
                error: "again".into(),
                retry_at: now,
            },
        ] {
            let recorded = store
                .finish_run(&id, "dispatcher-a", outcome, now)
                .await
                .unwrap();
            assert!(!recorded, "the result of a cancelled run is dropped");
        }
        let c = store.get(&id).await.unwrap();
        assert_eq!(c.status, ConversationStatus::Cancelled);
        assert_eq!(c.last_error, None);
        assert_eq!(c.completed_at, Some(now));

        // Through the dispatcher: the run is in flight when the cancel lands, then ends well.
        let id = new_id();
        store
            .schedule(id.clone(), &valid("cancel me too", now), None, now)
            .await
            .unwrap();
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let gate = Arc::new(Gate {
            started: started_tx,
            release: release.clone(),
        });
        let manual = ManualClock::new(now);
        let dispatcher = Dispatcher::new(
            store.clone(),
            gate,
            DispatcherConfig::default(),
            manual.clock(),
            Arc::new(Notify::new()),
        );
        let slots = Arc::new(Semaphore::new(4));
        assert_eq!(dispatcher.tick(&slots).await, 1);
        assert_eq!(started.recv().await.unwrap(), id);
        store.cancel(&id, now).await.unwrap();
        release.notify_one();
        // The run is over (and its result handled) when its slot comes back.
        let slots_ref = &slots;
        wait_for("the run to end", || async move {
            (slots_ref.available_permits() == 4).then_some(())
        })
        .await;
        let c = store.get(&id).await.unwrap();
        assert_eq!(c.status, ConversationStatus::Cancelled);
        assert_eq!(c.attempts, 1);
        assert_eq!(c.last_error, None);
        assert_eq!(c.lease_owner, None);
    })
    .await;
}

// ---- (d) one idempotency key, 64 concurrent calls ---------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_schedules_with_one_key_create_one_conversation() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let server = serve(
            &dir.path().join("scheduler.db"),
            Arc::new(Counting::default()),
            system_clock(),
            dispatcher_config(),
        )
        .await;
        let c = Arc::new(connect(&server, "2026-07-28").await);
        let mut args = schedule_args("once", &in_minutes(90));
        args["idempotencyKey"] = json!("the-one-key");
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = c.clone();
            let args = args.clone();
            tasks.push(tokio::spawn(async move {
                call(&c, "scheduleConversation", args).await
            }));
        }
        let mut ids = HashSet::new();
        let mut created = 0;
        for t in tasks {
            let r = t.await.unwrap();
            assert!(!r.is_error, "{}", r.text());
            let s = structured(&r);
            ids.insert(s["conversationId"].as_str().unwrap().to_owned());
            if s["created"] == true {
                created += 1;
            }
        }
        assert_eq!(ids.len(), 1, "one conversation id for every call");
        assert_eq!(created, 1, "exactly one call created it");
        let page = structured(&call(&c, "listConversations", json!({"limit": 500})).await);
        assert_eq!(page["conversations"].as_array().unwrap().len(), 1);
        c.close().await.unwrap();
        server.shutdown().await.unwrap();
    })
    .await;
}
