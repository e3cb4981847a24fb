//! [`SchedulerService`]: the Scheduler's tools as typed async methods over an
//! [`McpSdkClient`].
//!
//! Reliability is the default, not a second method: `schedule_conversation` gives every
//! logical call one idempotency key (the caller's, or a new random one) before the first
//! attempt, so every retry, failover and replay of the call carries it and the server
//! creates the conversation once (the design document's `schedule_conversation_with_reliability`).
//! Arguments are checked locally with the same rules the server applies, so a bad timestamp
//! fails before any network call, naming the field.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mcp_resilience::IdempotencyKey;
use mcp_resilience::failover::FailoverHealth;
use mcp_transport::{CallOptions, CallToolResult, Content};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::client::{EndpointCheck, McpSdkClient, transport_error};
use crate::config::Config;
use crate::domain::{
    ConversationDetails, ConversationPage, ConversationRef, ListConversations,
    RescheduleConversation, ScheduleConversation, ScheduleResult, tool,
};
use crate::error::Kind;

/// The Scheduler's tools, typed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SchedulerService {
    client: McpSdkClient,
}

/// What [`SchedulerService::health_check`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HealthReport {
    /// True when the tools were listed, every Scheduler tool is there, and every region
    /// answered `/ping`.
    pub healthy: bool,
    /// The tools the server lists.
    pub tools: Vec<String>,
    /// Scheduler tools the server does not list.
    pub missing_tools: Vec<String>,
    /// Why listing the tools failed, if it did.
    pub tools_error: Option<String>,
    /// Each region's `/ping` (empty for stdio servers).
    pub endpoints: Vec<EndpointCheck>,
    /// The failover snapshot, when the server has failover URLs.
    pub failover: Option<FailoverHealth>,
    /// When the check ran.
    pub checked_at: SystemTime,
}

/// Every tool a Scheduler server must list.
pub const SCHEDULER_TOOLS: [&str; 5] = [
    tool::SCHEDULE,
    tool::STATUS,
    tool::LIST,
    tool::CANCEL,
    tool::RESCHEDULE,
];

impl SchedulerService {
    /// Connects to the server named `server` in `config`.
    pub async fn connect(config: &Config, server: &str) -> Result<Self, Error> {
        Ok(Self::new(McpSdkClient::from_config(config, server).await?))
    }

    /// The service over an already connected client.
    pub fn new(client: McpSdkClient) -> Self {
        Self { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &McpSdkClient {
        &self.client
    }

    /// Schedules a conversation. Without an `idempotency_key` one is generated for this call;
    /// either way the same key goes with every attempt, so the conversation is created once.
    /// `created: false` in the result means the server had already created it for that key.
    pub async fn schedule_conversation(
        &self,
        mut request: ScheduleConversation,
    ) -> Result<ScheduleResult, Error> {
        if request.idempotency_key.as_deref().is_none_or(str::is_empty) {
            request.idempotency_key = Some(IdempotencyKey::random().as_str().to_owned());
        }
        request.validate().map_err(invalid)?;
        self.call(tool::SCHEDULE, &request).await
    }

    /// A conversation's status and details.
    pub async fn conversation_status(
        &self,
        conversation_id: &str,
    ) -> Result<ConversationDetails, Error> {
        self.call(tool::STATUS, &reference(conversation_id)?).await
    }

    /// Cancels a conversation that has not finished.
    pub async fn cancel_conversation(
        &self,
        conversation_id: &str,
    ) -> Result<ConversationDetails, Error> {
        self.call(tool::CANCEL, &reference(conversation_id)?).await
    }

    /// Moves a conversation that has not started to `scheduled_time` (RFC 3339 with offset).
    pub async fn reschedule_conversation(
        &self,
        conversation_id: &str,
        scheduled_time: &str,
    ) -> Result<ConversationDetails, Error> {
        reference(conversation_id)?;
        crate::domain::parse_time("scheduledTime", scheduled_time).map_err(invalid)?;
        let request = RescheduleConversation {
            conversation_id: conversation_id.to_owned(),
            scheduled_time: scheduled_time.to_owned(),
        };
        self.call(tool::RESCHEDULE, &request).await
    }

    /// One page of conversations matching `filter` (pass the page's `next_cursor` back as
    /// `filter.cursor` for the next); see [`pages`](Self::pages) to walk them all.
    pub async fn list_conversations(
        &self,
        filter: &ListConversations,
    ) -> Result<ConversationPage, Error> {
        filter.validate().map_err(invalid)?;
        self.call(tool::LIST, filter).await
    }

    /// Every page of conversations matching `filter`, fetched one at a time as
    /// [`Pages::next`] is called.
    pub fn pages(&self, filter: ListConversations) -> Pages {
        Pages {
            service: self.clone(),
            filter,
            done: false,
        }
    }

    /// Lists the tools and checks the Scheduler's are there, and pings every region.
    pub async fn health_check(&self) -> HealthReport {
        let (tools, tools_error) = match self.client.mcp().list_tools().await {
            Ok(tools) => (tools.into_iter().map(|t| t.name).collect::<Vec<_>>(), None),
            Err(e) => (Vec::new(), Some(error_chain(&e))),
        };
        let missing_tools: Vec<String> = if tools_error.is_some() {
            Vec::new()
        } else {
            SCHEDULER_TOOLS
                .iter()
                .filter(|t| !tools.iter().any(|have| have == *t))
                .map(|t| (*t).to_owned())
                .collect()
        };
        let endpoints = self.client.ping_endpoints().await;
        let healthy = tools_error.is_none()
            && missing_tools.is_empty()
            && endpoints.iter().all(|e| e.healthy);
        HealthReport {
            healthy,
            tools,
            missing_tools,
            tools_error,
            endpoints,
            failover: self.client.failover_health(),
            checked_at: SystemTime::now(),
        }
    }

    /// Runs [`health_check`](Self::health_check) every `interval` in the background until
    /// the returned monitor is dropped; [`HealthMonitor::latest`] is the last report.
    pub fn monitor(&self, interval: Duration) -> HealthMonitor {
        let latest: Arc<Mutex<Option<HealthReport>>> = Arc::default();
        let service = self.clone();
        let slot = latest.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let report = service.health_check().await;
                if !report.healthy {
                    tracing::warn!(
                        name: "scheduler.health.unhealthy",
                        target: "scheduler::health",
                        server = service.client.name(),
                        missing_tools = report.missing_tools.len(),
                        unhealthy_endpoints = report.endpoints.iter().filter(|e| !e.healthy).count(),
                        "scheduler health check failed"
                    );
                }
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
            }
        });
        HealthMonitor { latest, task }
    }

    async fn call<A: serde::Serialize, T: DeserializeOwned>(
        &self,
        name: &str,
        arguments: &A,
    ) -> Result<T, Error> {
        let arguments = serde_json::to_value(arguments).map_err(|e| {
            Error::new(Kind::InvalidArgument)
                .with_context(format!("arguments of `{name}`"))
                .with_source(e)
        })?;
        let result = self
            .client
            .mcp()
            .call_tool(name, arguments, CallOptions::new())
            .await
            .map_err(|e| transport_error(e).with_context(format!("calling `{name}`")))?;
        decode(name, result)
    }
}

/// The pages of a listing; see [`SchedulerService::pages`].
#[derive(Debug)]
pub struct Pages {
    service: SchedulerService,
    filter: ListConversations,
    done: bool,
}

impl Pages {
    /// The next page, or `None` after the last one. After an error the walk stops.
    pub async fn next(&mut self) -> Option<Result<ConversationPage, Error>> {
        if self.done {
            return None;
        }
        match self.service.list_conversations(&self.filter).await {
            Ok(page) => {
                match &page.next_cursor {
                    Some(cursor) => self.filter.cursor = Some(cursor.clone()),
                    None => self.done = true,
                }
                Some(Ok(page))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Periodic health checks; see [`SchedulerService::monitor`]. Dropping it stops them.
#[derive(Debug)]
pub struct HealthMonitor {
    latest: Arc<Mutex<Option<HealthReport>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HealthMonitor {
    /// The most recent report (`None` until the first check finishes).
    pub fn latest(&self) -> Option<HealthReport> {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reference(conversation_id: &str) -> Result<ConversationRef, Error> {
    if conversation_id.trim().is_empty() {
        return Err(
            Error::new(Kind::InvalidArgument).with_context("`conversationId`: must not be empty")
        );
    }
    Ok(ConversationRef {
        conversation_id: conversation_id.to_owned(),
    })
}

fn invalid(e: crate::domain::InvalidArgument) -> Error {
    Error::new(Kind::InvalidArgument).with_context(format!("`{}`: {}", e.field, e.message))
}

fn text_of(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join(" ")
}

fn decode<T: DeserializeOwned>(name: &str, result: CallToolResult) -> Result<T, Error> {
    if result.is_error {
        let message = text_of(&result);
        let message = if message.is_empty() {
            "no message".to_owned()
        } else {
            message
        };
        return Err(Error::new(Kind::Tool).with_context(format!("`{name}`: {message}")));
    }
    // Structured content, or (from servers that send only text) the JSON in the text.
    let value = match result.structured_content {
        Some(value) => value,
        None => serde_json::from_str::<Value>(&text_of(&result)).map_err(|e| {
            Error::new(Kind::InvalidResponse)
                .with_context(format!(
                    "`{name}` returned neither structured content nor JSON text"
                ))
                .with_source(e)
        })?,
    };
    serde_json::from_value(value).map_err(|e| {
        Error::new(Kind::InvalidResponse)
            .with_context(format!("`{name}` returned a result of another shape: {e}"))
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
