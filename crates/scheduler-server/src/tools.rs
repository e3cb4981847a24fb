//! The Scheduler's MCP tools on rmcp's `ServerHandler`: `scheduleConversation`,
//! `getConversationStatus`, `listConversations`, `cancelConversation`,
//! `rescheduleConversation`, with input and output JSON Schemas published in `tools/list`.
//!
//! Arguments are decoded here (not by rmcp), so every bad argument becomes a tool error that
//! names the field (`isError: true`, readable by the model and the caller), never a protocol
//! error, a panic or a 500. Store failures are tool errors too, with a generic message (the
//! details go to the log).

use std::sync::Arc;

use tracing::Instrument;

use jiff::Timestamp;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use scheduler::domain::{
    self, ConversationDetails, ConversationPage, ConversationRef, InvalidArgument,
    ListConversations, RescheduleConversation, ScheduleConversation, ScheduleResult, tool,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::clock::Clock;
use crate::store::{Conversation, Store, StoreError};

/// Wakes the dispatcher when a conversation may have become due sooner than it planned.
pub type Wake = Arc<tokio::sync::Notify>;

/// The tools, bound to a store. Cheap to clone (one per MCP session or request).
#[derive(Clone)]
pub struct SchedulerTools {
    store: Arc<dyn Store>,
    clock: Clock,
    wake: Wake,
    /// The dispatcher checks at least this often on its own; only conversations due sooner
    /// need to wake it (waking it for every insert cost a claim per insert under load).
    wake_horizon: std::time::Duration,
    tools: Arc<Vec<Tool>>,
}

impl std::fmt::Debug for SchedulerTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerTools").finish_non_exhaustive()
    }
}

fn schema_of<T: schemars::JsonSchema>() -> Arc<JsonObject> {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(map)) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn annotations(read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations {
    let mut a = ToolAnnotations::new();
    a.read_only_hint = Some(read_only);
    a.destructive_hint = Some(destructive);
    a.idempotent_hint = Some(idempotent);
    a.open_world_hint = Some(false);
    a
}

/// The published tool list.
pub fn tool_definitions() -> Vec<Tool> {
    vec![
        Tool::new(
            tool::SCHEDULE,
            "Schedule a conversation. Pass an idempotencyKey to make retries safe: the same key \
             with the same arguments returns the original conversation (created: false).",
            schema_of::<ScheduleConversation>(),
        )
        .with_raw_output_schema(schema_of::<ScheduleResult>())
        .with_annotations(annotations(false, false, false)),
        Tool::new(
            tool::STATUS,
            "Get a conversation's status and details.",
            schema_of::<ConversationRef>(),
        )
        .with_raw_output_schema(schema_of::<ConversationDetails>())
        .with_annotations(annotations(true, false, true)),
        Tool::new(
            tool::LIST,
            "List conversations by scheduled time, optionally filtered by status and time range. \
             Pass nextCursor back as cursor for the next page.",
            schema_of::<ListConversations>(),
        )
        .with_raw_output_schema(schema_of::<ConversationPage>())
        .with_annotations(annotations(true, false, true)),
        Tool::new(
            tool::CANCEL,
            "Cancel a conversation that has not finished.",
            schema_of::<ConversationRef>(),
        )
        .with_raw_output_schema(schema_of::<ConversationDetails>())
        .with_annotations(annotations(false, true, true)),
        Tool::new(
            tool::RESCHEDULE,
            "Move a conversation that has not started to another time.",
            schema_of::<RescheduleConversation>(),
        )
        .with_raw_output_schema(schema_of::<ConversationDetails>())
        .with_annotations(annotations(false, false, true)),
    ]
}

/// The public view of a stored conversation.
pub fn details(c: &Conversation) -> ConversationDetails {
    ConversationDetails {
        conversation_id: c.id.clone(),
        status: c.status,
        topic: c.topic.clone(),
        participants: c.participants.clone(),
        scheduled_time: c.scheduled_time.to_string(),
        timezone: c.timezone.clone(),
        duration_minutes: c.duration_minutes,
        attempts: c.attempts,
        started_at: c.started_at.map(|t| t.to_string()),
        completed_at: c.completed_at.map(|t| t.to_string()),
        last_error: c.last_error.clone(),
        metadata: c.metadata.clone(),
    }
}

/// A tool error naming what went wrong.
fn tool_error(code: &str, message: impl Into<String>, field: Option<&str>) -> CallToolResult {
    let message = message.into();
    let mut body = json!({"error": code, "message": message});
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    result.structured_content = Some(body);
    result
}

fn invalid(err: InvalidArgument) -> CallToolResult {
    tool_error("invalid_argument", err.to_string(), Some(&err.field))
}

fn store_error(err: StoreError, id: Option<&str>) -> CallToolResult {
    match err {
        StoreError::NotFound => tool_error(
            "not_found",
            format!("no conversation with id {:?}", id.unwrap_or_default()),
            Some("conversationId"),
        ),
        StoreError::IdempotencyConflict { existing_id } => tool_error(
            "idempotency_conflict",
            format!(
                "idempotencyKey was already used for conversation {existing_id} with different \
                 arguments; use a new key for a new conversation"
            ),
            Some("idempotencyKey"),
        ),
        StoreError::InvalidTransition { from, action } => tool_error(
            "invalid_transition",
            format!(
                "cannot {action} conversation {}: it is {from}",
                id.unwrap_or_default()
            ),
            Some("conversationId"),
        ),
        StoreError::BadCursor => tool_error(
            "invalid_argument",
            "cursor is not one this server issued",
            Some("cursor"),
        ),
        other => {
            tracing::error!(error = %other, "store failure in a tool call");
            tool_error(
                "unavailable",
                "the scheduler could not complete the request; retry later",
                None,
            )
        }
    }
}

fn ok<T: Serialize>(value: &T) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(v) => CallToolResult::structured(v),
        Err(e) => tool_error(
            "internal",
            format!("could not encode the result: {e}"),
            None,
        ),
    }
}

/// Decodes tool arguments; the error names the field (`participants[1]`) and the problem.
pub fn decode_args<T: DeserializeOwned>(args: Option<JsonObject>) -> Result<T, InvalidArgument> {
    let value = Value::Object(args.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in the message ("missing field `topic`").
        let field = match inner.strip_prefix("missing field `") {
            Some(rest) => rest.trim_end_matches('`').to_owned(),
            None if path == "." => "arguments".to_owned(),
            None => path,
        };
        InvalidArgument::new(field, inner)
    })
}

impl SchedulerTools {
    /// Tools over `store`; `wake` is notified when a conversation becomes due within
    /// `wake_horizon` (the dispatcher's longest sleep).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        wake: Wake,
        wake_horizon: std::time::Duration,
    ) -> Self {
        Self {
            store,
            clock,
            wake,
            wake_horizon,
            tools: Arc::new(tool_definitions()),
        }
    }

    /// Wakes the dispatcher if `when` is due before it would look again on its own.
    fn wake_if_due_soon(&self, when: Timestamp, now: Timestamp) {
        let horizon = jiff::SignedDuration::try_from(self.wake_horizon).unwrap_or_default();
        if when <= now.saturating_add(horizon).unwrap_or(now) {
            self.wake.notify_one();
        }
    }

    /// Runs one tool call (the transport-independent part of `tools/call`).
    pub async fn call(
        &self,
        name: &str,
        args: Option<JsonObject>,
        caller: Option<&str>,
    ) -> CallToolResult {
        match name {
            tool::SCHEDULE => self.schedule(args, caller).await,
            tool::STATUS => match decode_args::<ConversationRef>(args) {
                Ok(r) => match self.store.get(&r.conversation_id).await {
                    Ok(c) => ok(&details(&c)),
                    Err(e) => store_error(e, Some(&r.conversation_id)),
                },
                Err(e) => invalid(e),
            },
            tool::LIST => self.list(args).await,
            tool::CANCEL => match decode_args::<ConversationRef>(args) {
                Ok(r) => match self.store.cancel(&r.conversation_id, (self.clock)()).await {
                    Ok(c) => ok(&details(&c)),
                    Err(e) => store_error(e, Some(&r.conversation_id)),
                },
                Err(e) => invalid(e),
            },
            tool::RESCHEDULE => self.reschedule(args).await,
            other => tool_error(
                "unknown_tool",
                format!("no tool named {other:?}"),
                Some("name"),
            ),
        }
    }

    async fn schedule(&self, args: Option<JsonObject>, caller: Option<&str>) -> CallToolResult {
        let valid = match decode_args::<ScheduleConversation>(args).and_then(|a| a.validate()) {
            Ok(v) => v,
            Err(e) => return invalid(e),
        };
        // UUIDv7: time-ordered, so the store's primary-key index grows at its right edge
        // instead of dirtying a random page per insert (74 random bits keep ids unguessable;
        // the id does reveal its creation millisecond).
        let id = uuid::Uuid::now_v7().to_string();
        let now = (self.clock)();
        match self.store.schedule(id, &valid, caller, now).await {
            Ok(scheduled) => {
                if scheduled.created {
                    self.wake_if_due_soon(scheduled.conversation.scheduled_time, now);
                    tracing::info!(conversation = %scheduled.conversation.id, "conversation scheduled");
                }
                let c = &scheduled.conversation;
                ok(&ScheduleResult {
                    conversation_id: c.id.clone(),
                    status: c.status,
                    scheduled_time: c.scheduled_time.to_string(),
                    created: scheduled.created,
                })
            }
            Err(e) => store_error(e, None),
        }
    }

    async fn list(&self, args: Option<JsonObject>) -> CallToolResult {
        let query = match decode_args::<ListConversations>(args).and_then(|a| a.validate()) {
            Ok(q) => q,
            Err(e) => return invalid(e),
        };
        match self.store.list(&query).await {
            Ok(page) => ok(&ConversationPage {
                conversations: page.conversations.iter().map(details).collect(),
                next_cursor: page.next_cursor,
            }),
            Err(e) => store_error(e, None),
        }
    }

    async fn reschedule(&self, args: Option<JsonObject>) -> CallToolResult {
        let r = match decode_args::<RescheduleConversation>(args) {
            Ok(r) => r,
            Err(e) => return invalid(e),
        };
        let when: Timestamp = match domain::parse_time("scheduledTime", &r.scheduled_time) {
            Ok(t) => t,
            Err(e) => return invalid(e),
        };
        match self
            .store
            .reschedule(&r.conversation_id, when, (self.clock)())
            .await
        {
            Ok(c) => {
                self.wake_if_due_soon(when, (self.clock)());
                ok(&details(&c))
            }
            Err(e) => store_error(e, Some(&r.conversation_id)),
        }
    }
}

impl ServerHandler for SchedulerTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "scheduler-server",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Schedules conversations. Use scheduleConversation with an idempotencyKey so a \
                 retry never schedules twice; check progress with getConversationStatus.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let span = telemetry::server_span("tools/list", None, &context);
        let _entered = span.enter();
        Ok(ListToolsResult::with_all_items((*self.tools).clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::auth::Claims>())
            .map(|claims| claims.subject.clone());
        let span = telemetry::server_span("tools/call", Some(&request.name), &context);
        if !self.tools.iter().any(|t| t.name == request.name) {
            telemetry::record_error(&span, "-32602");
            // An unknown tool is a protocol error (-32602), not a tool result.
            return Err(ErrorData::invalid_params(
                format!("unknown tool {:?}", request.name.as_ref()),
                None,
            ));
        }
        let args: Option<Map<String, Value>> = request.arguments;
        let result = self
            .call(&request.name, args, caller.as_deref())
            .instrument(span.clone())
            .await;
        telemetry::record_tool_outcome(&span, &result);
        Ok(result.into())
    }
}

/// The server side of the telemetry conventions: one `mcp.server.request` span per MCP
/// request, continuing the caller's trace from `_meta` or the HTTP headers.
mod telemetry {
    use rmcp::RoleServer;
    use rmcp::model::CallToolResult;
    use rmcp::service::RequestContext;
    use serde_json::Value;
    use tracing::Span;
    use tracing::field::Empty;

    pub(super) fn server_span(
        method: &str,
        tool: Option<&str>,
        context: &RequestContext<RoleServer>,
    ) -> Span {
        let span = tracing::info_span!(
            target: "scheduler_server::mcp",
            "mcp.server.request",
            otel.name = Empty,
            otel.kind = "server",
            otel.status_code = Empty,
            mcp.method.name = method,
            gen_ai.tool.name = Empty,
            gen_ai.operation.name = Empty,
            jsonrpc.request.id = %context.id,
            mcp.session.id = Empty,
            error.type = Empty,
        );
        if span.is_disabled() {
            return span;
        }
        match tool {
            Some(tool) => {
                span.record("otel.name", format!("{method} {tool}"));
                span.record("gen_ai.tool.name", tool);
                span.record("gen_ai.operation.name", "execute_tool");
            }
            None => {
                span.record("otel.name", method);
            }
        }
        let parts = context.extensions.get::<http::request::Parts>();
        if let Some(session) = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
        {
            span.record("mcp.session.id", session);
        }
        // `_meta` first (it survives any transport), then the HTTP headers.
        azure_telemetry::propagation::set_parent(&span, &|key| {
            context
                .meta
                .get(key)
                .and_then(Value::as_str)
                .or_else(|| {
                    parts
                        .and_then(|p| p.headers.get(key))
                        .and_then(|v| v.to_str().ok())
                })
                .map(str::to_owned)
        });
        span
    }

    pub(super) fn record_error(span: &Span, error_type: &str) {
        span.record("error.type", error_type);
        span.record("otel.status_code", "ERROR");
    }

    pub(super) fn record_tool_outcome(span: &Span, result: &CallToolResult) {
        if result.is_error == Some(true) {
            record_error(span, "tool_error");
        }
    }
}
