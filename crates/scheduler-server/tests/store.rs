//! Behaviour of [`SqliteStore`] against the [`Store`] contract, on real SQLite files in a
//! temporary directory and in memory: round trips, idempotency (also under 64 concurrent
//! callers), keyset pagination, state transitions, dispatch leases and retries, reopening a
//! file (also a copy taken while the store was live, as after a crash), backup and restore,
//! and a throughput smoke test (no timing assertions; it prints schedules/s).
//!
//! Time is always passed in, so nothing here sleeps.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use scheduler::domain::{ConversationStatus, ValidList, ValidSchedule};
use scheduler_server::store::{
    BACKUP_FORMAT, Backup, Client, Conversation, RunOutcome, SqliteStore, Store, StoreError,
};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

// ---- helpers ----------------------------------------------------------------------------

/// A fixed instant plus `secs` seconds.
fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn sample(topic: &str, when: Timestamp, key: Option<&str>) -> ValidSchedule {
    ValidSchedule {
        topic: topic.to_owned(),
        participants: vec!["ana@contoso.example".into(), "bo@contoso.example".into()],
        scheduled_time: when,
        timezone: Some("Europe/Paris".into()),
        duration_minutes: 45,
        metadata: object(json!({"room": "A-12", "priority": 2, "tags": ["q4", {"x": null}]})),
        idempotency_key: key.map(str::to_owned),
    }
}

fn list_query(limit: u32) -> ValidList {
    ValidList {
        status: None,
        from: None,
        to: None,
        limit,
        cursor: None,
    }
}

fn file_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scheduler.db")).unwrap();
    (dir, store)
}

/// A file store and an in-memory store (the directory guard keeps the file alive).
fn both() -> Vec<(&'static str, Option<TempDir>, SqliteStore)> {
    let (dir, file) = file_store();
    vec![
        ("file", Some(dir), file),
        ("memory", None, SqliteStore::in_memory().unwrap()),
    ]
}

async fn schedule_at(store: &SqliteStore, topic: &str, when: Timestamp) -> Conversation {
    let s = sample(topic, when, None);
    store
        .schedule(new_id(), &s, None, at(0))
        .await
        .unwrap()
        .conversation
}

/// Every page of `query`, following cursors.
async fn all_pages(store: &SqliteStore, mut query: ValidList) -> (Vec<Conversation>, usize) {
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.list(&query).await.unwrap();
        pages += 1;
        assert!(page.conversations.len() <= query.limit as usize);
        rows.extend(page.conversations);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return (rows, pages),
        }
    }
}

fn sorted_by_time_then_id(rows: &[Conversation]) -> bool {
    rows.windows(2)
        .all(|w| (w[0].scheduled_time, &w[0].id) < (w[1].scheduled_time, &w[1].id))
}

const LEASE: Duration = Duration::from_secs(30);

// ---- round trip -------------------------------------------------------------------------

#[tokio::test]
async fn schedule_and_get_round_trip_every_field() {
    for (kind, _dir, store) in both() {
        let id = new_id();
        let when = Timestamp::from_millisecond(1_800_000_000_123).unwrap();
        let s = sample("Quarterly review", when, Some("key-1"));
        let now = at(-3600);
        let scheduled = store
            .schedule(id.clone(), &s, Some("client-7"), now)
            .await
            .unwrap();
        assert!(scheduled.created, "{kind}");
        let c = scheduled.conversation;
        assert_eq!(c.id, id);
        assert_eq!(c.status, ConversationStatus::Scheduled);
        assert_eq!(c.topic, "Quarterly review");
        assert_eq!(c.participants, s.participants);
        assert_eq!(c.scheduled_time, when);
        assert_eq!(c.timezone.as_deref(), Some("Europe/Paris"));
        assert_eq!(c.duration_minutes, 45);
        assert_eq!(c.metadata, s.metadata);
        assert_eq!(c.idempotency_key.as_deref(), Some("key-1"));
        assert_eq!(c.fingerprint, s.fingerprint());
        assert_eq!(c.owner.as_deref(), Some("client-7"));
        assert_eq!(c.attempts, 0);
        assert_eq!((c.started_at, c.completed_at), (None, None));
        assert_eq!(
            (&c.last_error, &c.lease_owner, c.lease_until),
            (&None, &None, None)
        );
        assert_eq!((c.created_at, c.updated_at), (now, now));
        assert_eq!(store.get(&id).await.unwrap(), c, "{kind}");

        // Through a claim, a retry and a final failure, every field still reads back as
        // the operation returned it.
        let claimed = store
            .claim_due("dispatcher-a", when, LEASE, 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(store.get(&id).await.unwrap(), claimed[0], "{kind}");
        assert_eq!(claimed[0].attempts, 1);
        assert_eq!(claimed[0].started_at, Some(when));
        assert_eq!(claimed[0].lease_owner.as_deref(), Some("dispatcher-a"));
        assert_eq!(claimed[0].lease_until, Some(plus(when, 30)));
        let retry_at = plus(when, 60);
        let outcome = RunOutcome::Retry {
            error: "webhook answered 503".into(),
            retry_at,
        };
        assert!(
            store
                .finish_run(&id, "dispatcher-a", outcome, plus(when, 1))
                .await
                .unwrap()
        );
        let retried = store.get(&id).await.unwrap();
        assert_eq!(retried.status, ConversationStatus::Scheduled);
        assert_eq!(retried.scheduled_time, when, "listing time is kept");
        assert_eq!(retried.last_error.as_deref(), Some("webhook answered 503"));
        assert_eq!((retried.lease_owner, retried.lease_until), (None, None));
        assert_eq!(retried.updated_at, plus(when, 1));
        let claimed = store
            .claim_due("dispatcher-b", retry_at, LEASE, 10)
            .await
            .unwrap();
        assert_eq!(claimed[0].attempts, 2);
        let failed = RunOutcome::Failed {
            error: "gave up".into(),
        };
        assert!(
            store
                .finish_run(&id, "dispatcher-b", failed, plus(retry_at, 2))
                .await
                .unwrap()
        );
        let done = store.get(&id).await.unwrap();
        assert_eq!(done.status, ConversationStatus::Failed);
        assert_eq!(done.completed_at, Some(plus(retry_at, 2)));
        assert_eq!(done.last_error.as_deref(), Some("gave up"));
        assert_eq!(done.started_at, Some(retry_at));
        assert_eq!(done.created_at, now);
    }
}

#[tokio::test]
async fn times_are_kept_to_the_millisecond_consistently() {
    for (kind, _dir, store) in both() {
        let fine = Timestamp::new(1_800_000_000, 123_456_789).unwrap();
        let s = sample("precise", fine, None);
        let c = store
            .schedule(new_id(), &s, None, fine)
            .await
            .unwrap()
            .conversation;
        let ms = Timestamp::from_millisecond(1_800_000_000_123).unwrap();
        assert_eq!((c.scheduled_time, c.created_at), (ms, ms), "{kind}");
        assert_eq!(store.get(&c.id).await.unwrap(), c, "{kind}");
    }
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_duplicate_ids_are_refused() {
    for (kind, _dir, store) in both() {
        assert!(
            matches!(store.get("nope").await, Err(StoreError::NotFound)),
            "{kind}"
        );
        assert!(matches!(
            store.cancel("nope", at(0)).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store.reschedule("nope", at(5), at(0)).await,
            Err(StoreError::NotFound)
        ));
        assert!(
            !store
                .finish_run("nope", "a", RunOutcome::Completed, at(0))
                .await
                .unwrap()
        );
        let c = schedule_at(&store, "one", at(10)).await;
        let again = store
            .schedule(c.id.clone(), &sample("two", at(11), None), None, at(0))
            .await;
        assert!(
            matches!(again, Err(StoreError::Duplicate)),
            "{kind}: {again:?}"
        );
    }
}

// ---- idempotency ------------------------------------------------------------------------

#[tokio::test]
async fn idempotency_key_replays_or_conflicts() {
    for (kind, _dir, store) in both() {
        let s = sample("Standup", at(100), Some("abc-123"));
        let first = store
            .schedule(new_id(), &s, Some("c1"), at(0))
            .await
            .unwrap();
        assert!(first.created);

        // Same key, same payload (another id, later): the original, not created.
        let replay = store
            .schedule(new_id(), &s, Some("c1"), at(5))
            .await
            .unwrap();
        assert!(!replay.created, "{kind}");
        assert_eq!(replay.conversation, first.conversation);

        // Same key, different payload: a conflict naming the original.
        let mut other = s.clone();
        other.topic = "Standup (moved)".into();
        match store.schedule(new_id(), &other, Some("c1"), at(6)).await {
            Err(StoreError::IdempotencyConflict { existing_id }) => {
                assert_eq!(existing_id, first.conversation.id, "{kind}");
            }
            other => panic!("{kind}: expected a conflict, got {other:?}"),
        }

        // Another key, or no key, creates.
        let mut fresh = s.clone();
        fresh.idempotency_key = Some("abc-124".into());
        assert!(
            store
                .schedule(new_id(), &fresh, None, at(7))
                .await
                .unwrap()
                .created
        );
        let mut keyless = s.clone();
        keyless.idempotency_key = None;
        assert!(
            store
                .schedule(new_id(), &keyless, None, at(8))
                .await
                .unwrap()
                .created
        );
        assert!(
            store
                .schedule(new_id(), &keyless, None, at(9))
                .await
                .unwrap()
                .created
        );
        assert_eq!(all_pages(&store, list_query(50)).await.0.len(), 4, "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_schedules_with_one_key_create_exactly_one() {
    let (_dir, file) = file_store();
    for (kind, store) in [
        ("file", file),
        ("memory", SqliteStore::in_memory().unwrap()),
    ] {
        let store = Arc::new(store);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let s = sample("Once", at(50), Some("the-one-key"));
                store.schedule(new_id(), &s, None, at(0)).await
            }));
        }
        let mut created = 0;
        let mut ids = HashSet::new();
        for task in tasks {
            let scheduled = task.await.unwrap().unwrap();
            created += usize::from(scheduled.created);
            ids.insert(scheduled.conversation.id);
        }
        assert_eq!(created, 1, "{kind}");
        assert_eq!(
            ids.len(),
            1,
            "{kind}: every caller sees the same conversation"
        );
        assert_eq!(
            all_pages(&store, list_query(100)).await.0.len(),
            1,
            "{kind}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_command_does_not_abort_its_batch() {
    let (_dir, store) = file_store();
    let store = Arc::new(store);
    let done = schedule_at(&store, "final", at(1)).await;
    store.cancel(&done.id, at(2)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..128 {
        let store = Arc::clone(&store);
        let done = done.id.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let s = sample(&format!("ok {i}"), at(i), None);
                store.schedule(new_id(), &s, None, at(0)).await.map(|_| ())
            } else if i % 4 == 1 {
                store.cancel(&done, at(3)).await.map(|_| ())
            } else {
                store.reschedule("missing", at(3), at(3)).await.map(|_| ())
            }
        }));
    }
    let mut ok = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match (i % 4, task.await.unwrap()) {
            (0 | 2, Ok(())) => ok += 1,
            (1, Err(StoreError::InvalidTransition { from, action })) => {
                assert_eq!((from, action), (ConversationStatus::Cancelled, "cancel"));
            }
            (3, Err(StoreError::NotFound)) => {}
            (n, other) => panic!("task {i} ({n}): unexpected {other:?}"),
        }
    }
    assert_eq!(ok, 64);
    assert_eq!(all_pages(&store, list_query(500)).await.0.len(), 65);
}

// ---- list -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_visit_every_row_once_in_order_with_filters() {
    for (kind, _dir, store) in both() {
        let store = Arc::new(store);
        // 1,000 conversations over 97 distinct times, so ties are broken by id.
        let mut tasks = Vec::new();
        for worker in 0..8 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut made = Vec::new();
                for i in (worker..1000).step_by(8) {
                    let when = at((i * 37 % 97) * 60);
                    let s = sample(&format!("c{i}"), when, None);
                    made.push(
                        store
                            .schedule(new_id(), &s, None, at(0))
                            .await
                            .unwrap()
                            .conversation,
                    );
                }
                made
            }));
        }
        let mut expected = Vec::new();
        for task in tasks {
            expected.extend(task.await.unwrap());
        }
        expected.sort_by(|a, b| (a.scheduled_time, &a.id).cmp(&(b.scheduled_time, &b.id)));

        let (rows, pages) = all_pages(&store, list_query(50)).await;
        assert_eq!(pages, 20, "{kind}");
        let ids: Vec<_> = rows.iter().map(|c| c.id.clone()).collect();
        let want: Vec<_> = expected.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, want, "{kind}: every row once, by time then id");

        // Cancel every 10th; filter by status.
        let mut cancelled = Vec::new();
        for c in expected.iter().step_by(10) {
            cancelled.push(store.cancel(&c.id, at(1)).await.unwrap().id);
        }
        let (rows, _) = all_pages(
            &store,
            ValidList {
                status: Some(ConversationStatus::Cancelled),
                ..list_query(7)
            },
        )
        .await;
        assert_eq!(
            rows.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            cancelled
        );
        assert!(
            rows.iter()
                .all(|c| c.status == ConversationStatus::Cancelled)
        );

        // Time window [from, to), with and without a status.
        let (from, to) = (at(10 * 60), at(20 * 60));
        let in_window = |c: &Conversation| c.scheduled_time >= from && c.scheduled_time < to;
        let (rows, _) = all_pages(
            &store,
            ValidList {
                from: Some(from),
                to: Some(to),
                ..list_query(13)
            },
        )
        .await;
        assert_eq!(
            rows.len(),
            expected.iter().filter(|c| in_window(c)).count(),
            "{kind}"
        );
        assert!(rows.iter().all(in_window) && sorted_by_time_then_id(&rows));
        let (rows, _) = all_pages(
            &store,
            ValidList {
                status: Some(ConversationStatus::Scheduled),
                from: Some(from),
                to: Some(to),
                ..list_query(500)
            },
        )
        .await;
        let want = expected
            .iter()
            .filter(|c| in_window(c) && !cancelled.contains(&c.id))
            .count();
        assert_eq!(rows.len(), want, "{kind}");
        assert!(
            rows.iter()
                .all(|c| c.status == ConversationStatus::Scheduled)
        );

        // A page that ends exactly at the last row has no cursor.
        let page = store.list(&list_query(500)).await.unwrap();
        assert!(page.next_cursor.is_some());
        let page = store
            .list(&ValidList {
                cursor: page.next_cursor,
                ..list_query(500)
            })
            .await
            .unwrap();
        assert_eq!((page.conversations.len(), page.next_cursor), (500, None));
    }
}

#[tokio::test]
async fn malformed_cursors_are_refused() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for (kind, _dir, store) in both() {
        schedule_at(&store, "x", at(1)).await;
        for cursor in [
            "not base64!".to_owned(),
            b64(b"no-colon"),
            b64(b"ten:abc"),
            b64(b"12:"),
            b64(&[0xff, 0xfe, b':', b'x']),
            String::new(),
        ] {
            let query = ValidList {
                cursor: Some(cursor.clone()),
                ..list_query(10)
            };
            let result = store.list(&query).await;
            assert!(
                matches!(result, Err(StoreError::BadCursor)),
                "{kind} {cursor:?}: {result:?}"
            );
        }
    }
}

// ---- transitions ------------------------------------------------------------------------

#[tokio::test]
async fn cancel_and_reschedule_transitions() {
    for (kind, _dir, store) in both() {
        let a = schedule_at(&store, "a", at(100)).await;
        let moved = store.reschedule(&a.id, at(50), at(1)).await.unwrap();
        assert_eq!(moved.scheduled_time, at(50), "{kind}");
        assert_eq!(moved.updated_at, at(1));
        assert_eq!(moved.status, ConversationStatus::Scheduled);
        assert_eq!(store.next_due().await.unwrap(), Some(at(50)));
        assert!(
            store
                .claim_due("d", at(49), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let cancelled = store.cancel(&a.id, at(2)).await.unwrap();
        assert_eq!(cancelled.status, ConversationStatus::Cancelled);
        assert_eq!(cancelled.completed_at, Some(at(2)));
        assert_eq!(store.get(&a.id).await.unwrap(), cancelled);
        assert_eq!(store.next_due().await.unwrap(), None);
        assert!(
            store
                .claim_due("d", at(1000), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let refused = |r: Result<Conversation, StoreError>| match r {
            Err(StoreError::InvalidTransition { from, action }) => (from, action),
            other => panic!("{kind}: expected InvalidTransition, got {other:?}"),
        };
        assert_eq!(
            refused(store.cancel(&a.id, at(3)).await),
            (ConversationStatus::Cancelled, "cancel")
        );
        assert_eq!(
            refused(store.reschedule(&a.id, at(9), at(3)).await),
            (ConversationStatus::Cancelled, "reschedule")
        );

        // Running: cannot be moved; can be cancelled, and the run's result is then ignored.
        let b = schedule_at(&store, "b", at(10)).await;
        store.claim_due("d", at(10), LEASE, 10).await.unwrap();
        assert_eq!(
            refused(store.reschedule(&b.id, at(99), at(11)).await),
            (ConversationStatus::Running, "reschedule")
        );
        let cancelled = store.cancel(&b.id, at(12)).await.unwrap();
        assert_eq!(cancelled.status, ConversationStatus::Cancelled);
        assert!(
            !store
                .finish_run(&b.id, "d", RunOutcome::Completed, at(13))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get(&b.id).await.unwrap(),
            cancelled,
            "{kind}: stays cancelled"
        );

        // Completed: final.
        let c = schedule_at(&store, "c", at(20)).await;
        store.claim_due("d", at(20), LEASE, 10).await.unwrap();
        assert!(
            store
                .finish_run(&c.id, "d", RunOutcome::Completed, at(21))
                .await
                .unwrap()
        );
        assert_eq!(
            refused(store.cancel(&c.id, at(22)).await),
            (ConversationStatus::Completed, "cancel")
        );
        assert_eq!(
            refused(store.reschedule(&c.id, at(99), at(22)).await),
            (ConversationStatus::Completed, "reschedule")
        );
    }
}

// ---- dispatch ---------------------------------------------------------------------------

#[tokio::test]
async fn claims_lease_and_expired_leases_are_reclaimed() {
    for (kind, _dir, store) in both() {
        let c = schedule_at(&store, "leased", at(100)).await;
        assert!(
            store
                .claim_due("A", at(99), LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{kind}"
        );

        let claimed = store.claim_due("A", at(100), LEASE, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        let run = &claimed[0];
        assert_eq!(run.id, c.id);
        assert_eq!(run.status, ConversationStatus::Running);
        assert_eq!(run.attempts, 1);
        assert_eq!(run.started_at, Some(at(100)));
        assert_eq!(run.lease_owner.as_deref(), Some("A"));
        assert_eq!(run.lease_until, Some(at(130)));
        assert_eq!(store.next_due().await.unwrap(), Some(at(130)));

        // Held: nobody else gets it before the lease ends.
        assert!(
            store
                .claim_due("B", at(129), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // A stalls; the lease expires; B re-claims it.
        let reclaimed = store.claim_due("B", at(131), LEASE, 10).await.unwrap();
        assert_eq!(reclaimed.len(), 1, "{kind}");
        assert_eq!(reclaimed[0].attempts, 2);
        assert_eq!(reclaimed[0].lease_owner.as_deref(), Some("B"));
        assert_eq!(reclaimed[0].started_at, Some(at(131)));

        assert!(
            !store
                .finish_run(&c.id, "A", RunOutcome::Completed, at(132))
                .await
                .unwrap()
        );
        assert_eq!(
            store.get(&c.id).await.unwrap().status,
            ConversationStatus::Running
        );
        assert!(
            store
                .finish_run(&c.id, "B", RunOutcome::Completed, at(133))
                .await
                .unwrap()
        );
        let done = store.get(&c.id).await.unwrap();
        assert_eq!(done.status, ConversationStatus::Completed);
        assert_eq!(done.completed_at, Some(at(133)));
        assert_eq!((done.lease_owner, done.lease_until), (None, None));

        // Final: not claimed again, not finished again.
        assert!(
            store
                .claim_due("C", at(10_000), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            !store
                .finish_run(&c.id, "B", RunOutcome::Completed, at(134))
                .await
                .unwrap()
        );
        assert_eq!(store.next_due().await.unwrap(), None);
    }
}

#[tokio::test]
async fn claims_take_the_earliest_due_first_up_to_the_limit() {
    for (kind, _dir, store) in both() {
        let late = schedule_at(&store, "late", at(30)).await;
        let early = schedule_at(&store, "early", at(10)).await;
        let middle = schedule_at(&store, "middle", at(20)).await;
        let future = schedule_at(&store, "future", at(1000)).await;
        assert!(
            store
                .claim_due("A", at(40), LEASE, 0)
                .await
                .unwrap()
                .is_empty()
        );
        let first = store.claim_due("A", at(40), LEASE, 2).await.unwrap();
        let ids: Vec<_> = first.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, vec![early.id.clone(), middle.id.clone()], "{kind}");
        // Due at 30 (scheduled) comes before the leases that expire at 70.
        let again = store.claim_due("B", at(80), LEASE, 10).await.unwrap();
        let ids: Vec<_> = again.iter().map(|c| c.id.clone()).collect();
        let mut expired = vec![early.id, middle.id];
        expired.sort();
        assert_eq!(ids, [vec![late.id], expired].concat(), "{kind}");
        assert!(again.iter().all(|c| c.id != future.id));
    }
}

#[tokio::test]
async fn retries_come_due_again_at_retry_at_and_final_outcomes_stay_final() {
    for (kind, _dir, store) in both() {
        let c = schedule_at(&store, "flaky", at(100)).await;
        store.claim_due("A", at(100), LEASE, 10).await.unwrap();
        let outcome = RunOutcome::Retry {
            error: "timeout".into(),
            retry_at: at(160),
        };
        assert!(
            store
                .finish_run(&c.id, "A", outcome, at(101))
                .await
                .unwrap()
        );
        let waiting = store.get(&c.id).await.unwrap();
        assert_eq!(waiting.status, ConversationStatus::Scheduled, "{kind}");
        assert_eq!(waiting.scheduled_time, at(100));
        assert_eq!(waiting.last_error.as_deref(), Some("timeout"));
        assert_eq!(store.next_due().await.unwrap(), Some(at(160)));
        assert!(
            store
                .claim_due("A", at(159), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Listing still uses the original time.
        let page = store
            .list(&ValidList {
                from: Some(at(100)),
                to: Some(at(101)),
                ..list_query(10)
            })
            .await
            .unwrap();
        assert_eq!(page.conversations.len(), 1);

        let again = store.claim_due("A", at(160), LEASE, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 2);
        let failed = RunOutcome::Failed {
            error: "HTTP 500 three times".into(),
        };
        assert!(store.finish_run(&c.id, "A", failed, at(161)).await.unwrap());
        let dead = store.get(&c.id).await.unwrap();
        assert_eq!(dead.status, ConversationStatus::Failed);
        assert_eq!(dead.completed_at, Some(at(161)));
        assert_eq!(dead.last_error.as_deref(), Some("HTTP 500 three times"));
        assert!(
            store
                .claim_due("A", at(100_000), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.next_due().await.unwrap(), None);

        // Completed after a retry: final too, and no stale error.
        let d = schedule_at(&store, "eventually", at(200)).await;
        store.claim_due("A", at(200), LEASE, 10).await.unwrap();
        let retry = RunOutcome::Retry {
            error: "busy".into(),
            retry_at: at(210),
        };
        store.finish_run(&d.id, "A", retry, at(201)).await.unwrap();
        store.claim_due("A", at(210), LEASE, 10).await.unwrap();
        assert!(
            store
                .finish_run(&d.id, "A", RunOutcome::Completed, at(211))
                .await
                .unwrap()
        );
        let ok = store.get(&d.id).await.unwrap();
        assert_eq!(
            (ok.status, ok.attempts, ok.last_error),
            (ConversationStatus::Completed, 2, None)
        );
        assert!(
            store
                .claim_due("A", at(100_000), LEASE, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn next_due_is_the_earliest_due_time_or_lease_expiry() {
    for (kind, _dir, store) in both() {
        assert_eq!(store.next_due().await.unwrap(), None, "{kind}");
        let a = schedule_at(&store, "a", at(10)).await;
        let b = schedule_at(&store, "b", at(20)).await;
        assert_eq!(store.next_due().await.unwrap(), Some(at(10)));
        store
            .claim_due("A", at(10), Duration::from_secs(5), 1)
            .await
            .unwrap();
        assert_eq!(
            store.next_due().await.unwrap(),
            Some(at(15)),
            "{kind}: the lease"
        );
        store
            .finish_run(&a.id, "A", RunOutcome::Completed, at(12))
            .await
            .unwrap();
        assert_eq!(store.next_due().await.unwrap(), Some(at(20)));
        store.cancel(&b.id, at(13)).await.unwrap();
        assert_eq!(store.next_due().await.unwrap(), None);
        store.ping().await.unwrap();
    }
}

// ---- clients and settings ---------------------------------------------------------------

fn client(id: &str, disabled: bool) -> Client {
    Client {
        id: id.to_owned(),
        name: format!("{id} app"),
        key_hash: format!("sha256:{}", "ab".repeat(32)),
        scopes: vec!["conversations:write".into(), "conversations:read".into()],
        disabled,
        created_at: at(-100),
    }
}

#[tokio::test]
async fn clients_and_settings() {
    for (kind, _dir, store) in both() {
        store.create_client(&client("zeta", false)).await.unwrap();
        store.create_client(&client("alpha", true)).await.unwrap();
        let dup = store.create_client(&client("zeta", true)).await;
        assert!(matches!(dup, Err(StoreError::Duplicate)), "{kind}: {dup:?}");
        assert_eq!(
            store.get_client("zeta").await.unwrap(),
            client("zeta", false)
        );
        assert!(matches!(
            store.get_client("nope").await,
            Err(StoreError::NotFound)
        ));
        let ids: Vec<_> = store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["alpha", "zeta"]);
        store.set_client_disabled("zeta", true).await.unwrap();
        assert!(store.get_client("zeta").await.unwrap().disabled);
        store.set_client_disabled("zeta", false).await.unwrap();
        assert!(!store.get_client("zeta").await.unwrap().disabled);
        assert!(matches!(
            store.set_client_disabled("nope", true).await,
            Err(StoreError::NotFound)
        ));

        assert_eq!(store.get_setting("issuer").await.unwrap(), None);
        store
            .set_setting("issuer", &json!("https://a"), false)
            .await
            .unwrap();
        store
            .set_setting("issuer", &json!({"url": "https://b"}), false)
            .await
            .unwrap();
        assert_eq!(
            store.get_setting("issuer").await.unwrap(),
            Some(json!({"url": "https://b"})),
            "{kind}"
        );
    }
}

// ---- durability -------------------------------------------------------------------------

/// Fills a store with one of everything: every conversation state, a retry, a lease,
/// clients, public and secret settings.
async fn populate(store: &SqliteStore) {
    store.create_client(&client("svc-a", false)).await.unwrap();
    store.create_client(&client("svc-b", true)).await.unwrap();
    store
        .set_setting("issuer", &json!("https://scheduler.example"), false)
        .await
        .unwrap();
    store
        .set_setting("limits", &json!({"perMinute": 600}), false)
        .await
        .unwrap();
    store
        .set_setting(
            "signing_key",
            &json!({"kid": "k1", "d": "SECRET-MATERIAL"}),
            true,
        )
        .await
        .unwrap();
    for i in 0..10 {
        let s = sample(&format!("keyed {i}"), at(i * 10), Some(&format!("key-{i}")));
        store
            .schedule(new_id(), &s, Some("svc-a"), at(-5))
            .await
            .unwrap();
    }
    let mut plain = sample("no key, no tz", at(500), None);
    plain.timezone = None;
    plain.metadata = Map::new();
    store
        .schedule(new_id(), &plain, None, at(-4))
        .await
        .unwrap();
    // 0, 10: completed and failed; 20: retried; 30, 40: running (leased); 50: cancelled.
    let claimed = store.claim_due("disp-1", at(45), LEASE, 5).await.unwrap();
    assert_eq!(claimed.len(), 5);
    store
        .finish_run(&claimed[0].id, "disp-1", RunOutcome::Completed, at(46))
        .await
        .unwrap();
    let failed = RunOutcome::Failed {
        error: "nope".into(),
    };
    store
        .finish_run(&claimed[1].id, "disp-1", failed, at(46))
        .await
        .unwrap();
    let retry = RunOutcome::Retry {
        error: "later".into(),
        retry_at: at(90),
    };
    store
        .finish_run(&claimed[2].id, "disp-1", retry, at(46))
        .await
        .unwrap();
    let page = store
        .list(&ValidList {
            from: Some(at(50)),
            to: Some(at(51)),
            ..list_query(1)
        })
        .await
        .unwrap();
    store
        .cancel(&page.conversations[0].id, at(47))
        .await
        .unwrap();
}

#[tokio::test]
async fn reopened_file_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let store = SqliteStore::open(&path).unwrap();
    populate(&store).await;
    let before = store.export(at(1000)).await.unwrap();
    assert_eq!(before.conversations.len(), 11);

    // A copy of the files taken while the store is live and has not checkpointed is what a
    // crash leaves behind: committed data must be there.
    let crashed = tempfile::tempdir().unwrap();
    for name in ["scheduler.db", "scheduler.db-wal"] {
        let from = dir.path().join(name);
        if from.exists() {
            std::fs::copy(&from, crashed.path().join(name)).unwrap();
        }
    }
    let recovered = SqliteStore::open(crashed.path().join("scheduler.db")).unwrap();
    assert_eq!(recovered.export(at(1000)).await.unwrap(), before);
    drop(recovered);

    // A clean close and reopen.
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.export(at(1000)).await.unwrap(), before);
    assert_eq!(
        store.get_setting("signing_key").await.unwrap(),
        Some(json!({"kid": "k1", "d": "SECRET-MATERIAL"}))
    );
    assert_eq!(store.next_due().await.unwrap(), Some(at(60)));
    // The retried one is due at its retry time, the leased ones when their lease ends.
    let due = store.claim_due("disp-2", at(90), LEASE, 10).await.unwrap();
    let mut due: Vec<_> = due.iter().map(|c| c.topic.as_str()).collect();
    // Due at 60, 70, 75 (two expired leases), 80, 90 (the retry and one scheduled at 90);
    // ties are ordered by id, which is random here.
    due[2..4].sort_unstable();
    due[5..7].sort_unstable();
    assert_eq!(
        due,
        [
            "keyed 6", "keyed 7", "keyed 3", "keyed 4", "keyed 8", "keyed 2", "keyed 9"
        ]
    );
    // Idempotency keys survive too.
    let replay = store
        .schedule(
            new_id(),
            &sample("keyed 9", at(90), Some("key-9")),
            Some("svc-a"),
            at(0),
        )
        .await
        .unwrap();
    assert!(!replay.created);
}

#[tokio::test]
async fn newer_schema_and_non_database_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    drop(SqliteStore::open(&path).unwrap());
    drop(SqliteStore::open(&path).unwrap()); // migrations are applied once
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (999)", [])
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("schema version 999")),
        "{err}"
    );

    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(&junk).unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend(m) if m.contains("junk.db")),
        "{err}"
    );
}

// ---- backup -----------------------------------------------------------------------------

#[tokio::test]
async fn export_import_export_round_trips_without_secrets() {
    let (_dir, source) = file_store();
    populate(&source).await;
    let backup = source.export(at(1000)).await.unwrap();
    assert_eq!(backup.format, BACKUP_FORMAT);
    assert_eq!(
        backup
            .conversations
            .iter()
            .filter_map(|c| c.next_attempt_at)
            .collect::<Vec<_>>(),
        [at(90)],
        "the pending retry carries its retry time"
    );
    assert_eq!(backup.exported_at, at(1000));
    assert_eq!(backup.clients.len(), 2);
    assert_eq!(backup.conversations.len(), 11);
    assert!(backup.settings.contains_key("issuer"));
    assert!(
        !backup.settings.contains_key("signing_key"),
        "secret settings are left out"
    );
    let document = serde_json::to_string_pretty(&backup).unwrap();
    assert!(!document.contains("SECRET-MATERIAL"));
    let states: HashSet<_> = backup.conversations.iter().map(|c| c.status).collect();
    assert_eq!(states.len(), 5, "every state is in the backup");

    // Through the JSON file, into a fresh store of each kind.
    let restored: Backup = serde_json::from_str(&document).unwrap();
    assert_eq!(restored, backup);
    for (kind, _dir, target) in both() {
        target.import(&restored).await.unwrap();
        assert_eq!(target.export(at(1000)).await.unwrap(), backup, "{kind}");
        assert_eq!(target.get_setting("signing_key").await.unwrap(), None);
        // The restored store keeps working: idempotency keys, dispatch.
        let replay = target
            .schedule(
                new_id(),
                &sample("keyed 3", at(30), Some("key-3")),
                None,
                at(0),
            )
            .await
            .unwrap();
        assert!(!replay.created, "{kind}");
        // A pending retry keeps its retry time through the backup: the restored store is
        // due exactly when the source was.
        assert_eq!(
            target.next_due().await.unwrap(),
            source.next_due().await.unwrap(),
            "{kind}"
        );
        // A second import is refused.
        let again = target.import(&restored).await;
        assert!(
            matches!(again, Err(StoreError::NotEmpty)),
            "{kind}: {again:?}"
        );
    }
}

#[tokio::test]
async fn import_needs_an_empty_store() {
    let backup = Backup {
        format: BACKUP_FORMAT,
        exported_at: at(0),
        clients: vec![client("c", false)],
        settings: object(json!({"issuer": "x"})),
        conversations: Vec::new(),
    };
    for (kind, _dir, store) in both() {
        store
            .set_setting("signing_key", &json!("k"), true)
            .await
            .unwrap();
        let result = store.import(&backup).await;
        assert!(
            matches!(result, Err(StoreError::NotEmpty)),
            "{kind}: a secret setting"
        );
    }
    for (kind, _dir, store) in both() {
        store.create_client(&client("other", false)).await.unwrap();
        let result = store.import(&backup).await;
        assert!(
            matches!(result, Err(StoreError::NotEmpty)),
            "{kind}: a client"
        );
    }
    for (kind, _dir, store) in both() {
        schedule_at(&store, "x", at(1)).await;
        let result = store.import(&backup).await;
        assert!(
            matches!(result, Err(StoreError::NotEmpty)),
            "{kind}: a conversation"
        );
        assert!(matches!(
            store.get_client("c").await,
            Err(StoreError::NotFound)
        ));
    }
    // A failed import leaves nothing behind (one transaction).
    let (_dir, store) = file_store();
    let mut broken = backup.clone();
    broken.clients.push(client("c", true));
    let result = store.import(&broken).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    assert!(store.list_clients().await.unwrap().is_empty());
    assert_eq!(store.get_setting("issuer").await.unwrap(), None);
    store.import(&backup).await.unwrap();
    let future = Backup {
        format: BACKUP_FORMAT + 1,
        ..backup
    };
    let (_dir, store) = file_store();
    assert!(matches!(
        store.import(&future).await,
        Err(StoreError::Backend(_))
    ));
}

// ---- object safety and throughput ---------------------------------------------------------

#[tokio::test]
async fn usable_as_a_trait_object() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    store.ping().await.unwrap();
    let s = sample("dyn", at(1), None);
    let c = store.schedule(new_id(), &s, None, at(0)).await.unwrap();
    assert_eq!(store.get(&c.conversation.id).await.unwrap(), c.conversation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn throughput_smoke_10000_schedules_from_64_tasks() {
    const TASKS: usize = 64;
    const TOTAL: usize = 10_000;
    let (_dir, store) = file_store();
    let store = Arc::new(store);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in (t..TOTAL).step_by(TASKS) {
                let key = format!("smoke-{i}");
                let s = sample(
                    &format!("smoke {i}"),
                    at(i64::try_from(i).unwrap()),
                    Some(&key),
                );
                let scheduled = store
                    .schedule(new_id(), &s, Some("bench"), at(0))
                    .await
                    .unwrap();
                assert!(scheduled.created);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!(
        "throughput smoke: {TOTAL} schedules from {TASKS} tasks in {elapsed:?} = {:.0} schedules/s \
         (file store; debug builds are much slower than release)",
        TOTAL as f64 / elapsed.as_secs_f64()
    );
    let (rows, _) = all_pages(&store, list_query(500)).await;
    assert_eq!(rows.len(), TOTAL);
    assert!(sorted_by_time_then_id(&rows));
}
