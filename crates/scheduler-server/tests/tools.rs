//! The tools called in process ([`SchedulerTools::call`], an in-memory store, a fixed clock;
//! no network): time precision. Times are kept to the millisecond and sub-millisecond digits
//! are dropped when the arguments are validated, so the insert, the idempotency comparison
//! and the result all see the same value.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rmcp::model::{CallToolResult, JsonObject};
use scheduler_server::store::{SqliteStore, Store};
use scheduler_server::tools::{SchedulerTools, tool_definitions};
use serde_json::{Value, json};

const FINE: &str = "2030-01-01T10:00:00.123456789+02:00";
const STORED: &str = "2030-01-01T08:00:00.123Z";

fn tools() -> (SchedulerTools, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    let now = Timestamp::from_second(1_800_000_000).unwrap();
    let tools = SchedulerTools::new(
        store.clone(),
        Arc::new(move || now),
        Arc::new(tokio::sync::Notify::new()),
        Duration::from_secs(1),
    );
    (tools, store)
}

fn args(v: Value) -> Option<JsonObject> {
    match v {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

async fn call(tools: &SchedulerTools, name: &str, v: Value) -> Value {
    let result: CallToolResult = tools.call(name, args(v), Some("tester")).await;
    let body = result.structured_content.clone().unwrap_or(Value::Null);
    assert_ne!(result.is_error, Some(true), "{name}: {body}");
    body
}

/// The store and `getConversationStatus` both hold [`STORED`] for `id`.
async fn assert_stored_time(tools: &SchedulerTools, store: &Arc<dyn Store>, id: &str) {
    let stored = store.get(id).await.unwrap();
    assert_eq!(stored.scheduled_time.to_string(), STORED);
    let status = call(
        tools,
        "getConversationStatus",
        json!({"conversationId": id}),
    )
    .await;
    assert_eq!(status["scheduledTime"], STORED);
}

fn schedule_args(time: &str) -> Value {
    json!({
        "topic": "Precision",
        "participants": ["a@x.example"],
        "scheduledTime": time,
        "idempotencyKey": "precise-1",
    })
}

#[tokio::test]
async fn sub_millisecond_schedule_retries_replay_with_the_truncated_time() {
    let (tools, store) = tools();
    let first = call(&tools, "scheduleConversation", schedule_args(FINE)).await;
    assert_eq!(first["created"], true);
    assert_eq!(first["scheduledTime"], STORED);
    let id = first["conversationId"].as_str().unwrap().to_owned();

    // The same payload again: a replay, with the same (truncated) time.
    let again = call(&tools, "scheduleConversation", schedule_args(FINE)).await;
    assert_eq!(again["created"], false);
    assert_eq!(again["conversationId"], id.as_str());
    assert_eq!(again["scheduledTime"], STORED);

    // The time the first call returned is the same request too.
    let returned = call(&tools, "scheduleConversation", schedule_args(STORED)).await;
    assert_eq!(returned["created"], false);
    assert_eq!(returned["conversationId"], id.as_str());

    // Stored and read back at the millisecond.
    assert_stored_time(&tools, &store, &id).await;

    // Another millisecond is another payload: the key conflicts.
    let other = tools
        .call(
            "scheduleConversation",
            args(schedule_args("2030-01-01T08:00:00.124Z")),
            Some("tester"),
        )
        .await;
    assert_eq!(other.is_error, Some(true));
    assert_eq!(
        other.structured_content.unwrap()["error"],
        "idempotency_conflict"
    );
}

#[tokio::test]
async fn sub_millisecond_reschedules_store_and_return_the_truncated_time() {
    let (tools, store) = tools();
    let first = call(
        &tools,
        "scheduleConversation",
        schedule_args("2030-01-01T07:00:00Z"),
    )
    .await;
    let id = first["conversationId"].as_str().unwrap().to_owned();
    let move_to = json!({"conversationId": id, "scheduledTime": FINE});

    let moved = call(&tools, "rescheduleConversation", move_to.clone()).await;
    assert_eq!(moved["scheduledTime"], STORED);
    let stored = store.get(&id).await.unwrap();

    // Retried with the same payload: the same result.
    let again = call(&tools, "rescheduleConversation", move_to).await;
    assert_eq!(again, moved);
    assert_eq!(store.get(&id).await.unwrap(), stored);
    assert_stored_time(&tools, &store, &id).await;
}

#[tokio::test]
async fn the_input_schemas_say_times_are_kept_to_the_millisecond() {
    for tool in tool_definitions() {
        if !["scheduleConversation", "rescheduleConversation"].contains(&tool.name.as_ref()) {
            continue;
        }
        let schema = Value::Object((*tool.input_schema).clone());
        let description = schema["properties"]["scheduledTime"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(
            description.contains("millisecond"),
            "{}: {description}",
            tool.name
        );
    }
}
