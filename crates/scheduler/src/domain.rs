//! The Scheduler's tool contract: the arguments and results of `scheduleConversation`,
//! `getConversationStatus`, `listConversations`, `cancelConversation` and
//! `rescheduleConversation`, as camelCase JSON, with the validation both sides apply.
//!
//! This module is the only code the server shares with the client (it pulls no client
//! stack): the server validates with it before storing, the client before sending.
//!
//! # Time precision
//!
//! Times are kept to the millisecond. [`parse_time`] (and so every `validate`) drops
//! sub-millisecond digits (`…:00.123456789Z` becomes `…:00.123Z`), so every
//! path sees the same value: what is stored, what the idempotency comparison uses
//! ([`ValidSchedule::fingerprint`]) and what the tools return. A retry that sends the
//! original digits and one that sends the returned, truncated time are the same request.
//!
//! ```
//! use scheduler::domain::ScheduleConversation;
//!
//! let args: ScheduleConversation = serde_json::from_value(serde_json::json!({
//!     "topic": "Quarterly review",
//!     "participants": ["ana@contoso.example", "bo@contoso.example"],
//!     "scheduledTime": "2026-12-01T09:30:00+01:00",
//!     "timezone": "Europe/Paris"
//! }))?;
//! let valid = args.validate().expect("valid");
//! assert_eq!(valid.scheduled_time.to_string(), "2026-12-01T08:30:00Z");
//! assert_eq!(valid.duration_minutes, 30);
//!
//! let bad: ScheduleConversation = serde_json::from_value(serde_json::json!({
//!     "topic": "x", "participants": [], "scheduledTime": "tomorrow"
//! }))?;
//! let err = bad.validate().unwrap_err();
//! assert_eq!(err.field, "participants");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Tool names, as published in `tools/list`.
pub mod tool {
    /// Schedules a conversation.
    pub const SCHEDULE: &str = "scheduleConversation";
    /// Reads one conversation's status.
    pub const STATUS: &str = "getConversationStatus";
    /// Lists conversations, newest scheduled time first.
    pub const LIST: &str = "listConversations";
    /// Cancels a conversation that has not finished.
    pub const CANCEL: &str = "cancelConversation";
    /// Moves a conversation that has not started to another time.
    pub const RESCHEDULE: &str = "rescheduleConversation";
}

/// Limits every implementation enforces.
pub mod limits {
    /// Longest topic, in characters.
    pub const TOPIC_CHARS: usize = 500;
    /// Most participants.
    pub const PARTICIPANTS: usize = 100;
    /// Longest participant, in characters.
    pub const PARTICIPANT_CHARS: usize = 320;
    /// Longest conversation, in minutes (one day).
    pub const DURATION_MINUTES: u32 = 24 * 60;
    /// Default conversation length, in minutes.
    pub const DEFAULT_DURATION_MINUTES: u32 = 30;
    /// Largest `metadata` object, serialized, in bytes.
    pub const METADATA_BYTES: usize = 16 * 1024;
    /// Longest idempotency key, in bytes.
    pub const IDEMPOTENCY_KEY_BYTES: usize = 255;
    /// Most conversations in one `listConversations` page.
    pub const LIST_LIMIT: u32 = 500;
    /// Page size when `limit` is not given.
    pub const DEFAULT_LIST_LIMIT: u32 = 50;
}

/// A tool argument that is missing or invalid. `field` is the JSON path of the argument
/// (`participants[2]`), `message` says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidArgument {
    /// The argument, as a JSON path.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl InvalidArgument {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for InvalidArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid argument `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for InvalidArgument {}

/// Lifecycle of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    /// Waiting for its time.
    Scheduled,
    /// Being run by the dispatcher.
    Running,
    /// Ran successfully.
    Completed,
    /// Ran out of attempts; see `lastError`.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl ConversationStatus {
    /// The JSON name (`scheduled`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Scheduled => "scheduled",
            ConversationStatus::Running => "running",
            ConversationStatus::Completed => "completed",
            ConversationStatus::Failed => "failed",
            ConversationStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the JSON name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            ConversationStatus::Scheduled,
            ConversationStatus::Running,
            ConversationStatus::Completed,
            ConversationStatus::Failed,
            ConversationStatus::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// True once nothing more will happen to the conversation.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ConversationStatus::Completed
                | ConversationStatus::Failed
                | ConversationStatus::Cancelled
        )
    }
}

impl fmt::Display for ConversationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `scheduleConversation` arguments, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleConversation {
    /// What the conversation is about (1 to 500 characters).
    pub topic: String,
    /// Who takes part (1 to 100 non-empty entries, e.g. e-mail addresses).
    pub participants: Vec<String>,
    /// When it starts: RFC 3339 with a UTC offset, e.g. `2026-12-01T09:30:00+01:00`. Kept to
    /// the millisecond: finer digits are dropped (truncated), and the result shows the time
    /// in UTC.
    pub scheduled_time: String,
    /// IANA time zone the participants think in (e.g. `Europe/Paris`), kept for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Length in minutes (1 to 1440). Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// Free-form JSON object, at most 16 KiB serialized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Makes retries safe: the same key with the same arguments returns the original result
    /// (`created: false`); the same key with different arguments is an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// `scheduleConversation` arguments after validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSchedule {
    /// Trimmed topic.
    pub topic: String,
    /// Trimmed participants.
    pub participants: Vec<String>,
    /// Start, in UTC, truncated to the millisecond.
    pub scheduled_time: Timestamp,
    /// IANA time zone, if given (validated).
    pub timezone: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Metadata object (empty if not given).
    pub metadata: Map<String, Value>,
    /// Idempotency key, if given.
    pub idempotency_key: Option<String>,
}

impl ValidSchedule {
    /// A canonical fingerprint of the request (everything but the key), to tell a retry
    /// (same payload) from a conflicting reuse of the key (different payload).
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!({
            "topic": self.topic,
            "participants": self.participants,
            "scheduledTime": self.scheduled_time.to_string(),
            "timezone": self.timezone,
            "durationMinutes": self.duration_minutes,
            "metadata": self.metadata,
        });
        canonical.to_string()
    }
}

/// Parses an RFC 3339 timestamp that carries a UTC offset, truncated to the millisecond
/// (the precision times are kept at; see [the module docs](self#time-precision)).
///
/// ```
/// let t = scheduler::domain::parse_time("scheduledTime", "2030-01-01T10:00:00.123456789+02:00")
///     .expect("valid");
/// assert_eq!(t.to_string(), "2030-01-01T08:00:00.123Z");
/// ```
pub fn parse_time(field: &str, value: &str) -> Result<Timestamp, InvalidArgument> {
    let parsed = value.parse::<Timestamp>().map_err(|_| {
        InvalidArgument::new(
            field,
            format!(
                "{value:?} is not an RFC 3339 timestamp with a UTC offset \
                 (e.g. 2026-12-01T09:30:00+01:00 or 2026-12-01T08:30:00Z)"
            ),
        )
    })?;
    Ok(to_millisecond(parsed))
}

/// `t` with its sub-millisecond digits dropped (rounded down, also before 1970).
fn to_millisecond(t: Timestamp) -> Timestamp {
    let ms = t.as_millisecond(); // rounds toward zero
    match Timestamp::from_millisecond(ms) {
        Ok(toward_zero) if toward_zero > t => Timestamp::from_millisecond(ms - 1).unwrap_or(t),
        Ok(toward_zero) => toward_zero,
        Err(_) => t,
    }
}

impl ScheduleConversation {
    /// Checks every argument; the error names the first bad one.
    pub fn validate(&self) -> Result<ValidSchedule, InvalidArgument> {
        let topic = self.topic.trim();
        if topic.is_empty() {
            return Err(InvalidArgument::new("topic", "must not be empty"));
        }
        if topic.chars().count() > limits::TOPIC_CHARS {
            return Err(InvalidArgument::new(
                "topic",
                format!("must be at most {} characters", limits::TOPIC_CHARS),
            ));
        }
        if self.participants.is_empty() {
            return Err(InvalidArgument::new(
                "participants",
                "needs at least one participant",
            ));
        }
        if self.participants.len() > limits::PARTICIPANTS {
            return Err(InvalidArgument::new(
                "participants",
                format!("at most {} participants", limits::PARTICIPANTS),
            ));
        }
        let mut participants = Vec::with_capacity(self.participants.len());
        for (i, p) in self.participants.iter().enumerate() {
            let p = p.trim();
            let field = format!("participants[{i}]");
            if p.is_empty() {
                return Err(InvalidArgument::new(field, "must not be empty"));
            }
            if p.chars().count() > limits::PARTICIPANT_CHARS {
                return Err(InvalidArgument::new(
                    field,
                    format!("must be at most {} characters", limits::PARTICIPANT_CHARS),
                ));
            }
            participants.push(p.to_owned());
        }
        let scheduled_time = parse_time("scheduledTime", &self.scheduled_time)?;
        let timezone = match &self.timezone {
            None => None,
            Some(tz) => {
                jiff::tz::TimeZone::get(tz).map_err(|_| {
                    InvalidArgument::new(
                        "timezone",
                        format!("{tz:?} is not a known IANA time zone"),
                    )
                })?;
                Some(tz.clone())
            }
        };
        let duration_minutes = self
            .duration_minutes
            .unwrap_or(limits::DEFAULT_DURATION_MINUTES);
        if !(1..=limits::DURATION_MINUTES).contains(&duration_minutes) {
            return Err(InvalidArgument::new(
                "durationMinutes",
                format!("must be between 1 and {}", limits::DURATION_MINUTES),
            ));
        }
        let metadata = self.metadata.clone().unwrap_or_default();
        let size = serde_json::to_vec(&metadata)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > limits::METADATA_BYTES {
            return Err(InvalidArgument::new(
                "metadata",
                format!(
                    "is {size} bytes serialized; at most {} allowed",
                    limits::METADATA_BYTES
                ),
            ));
        }
        let idempotency_key = match &self.idempotency_key {
            None => None,
            Some(k) => {
                if k.is_empty() || k.len() > limits::IDEMPOTENCY_KEY_BYTES {
                    return Err(InvalidArgument::new(
                        "idempotencyKey",
                        format!("must be 1 to {} bytes", limits::IDEMPOTENCY_KEY_BYTES),
                    ));
                }
                if !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                    return Err(InvalidArgument::new(
                        "idempotencyKey",
                        "must be visible ASCII without spaces",
                    ));
                }
                Some(k.clone())
            }
        };
        Ok(ValidSchedule {
            topic: topic.to_owned(),
            participants,
            scheduled_time,
            timezone,
            duration_minutes,
            metadata,
            idempotency_key,
        })
    }
}

/// `scheduleConversation` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ScheduleResult {
    /// The conversation's id.
    pub conversation_id: String,
    /// Always `scheduled` for a new or replayed request.
    pub status: ConversationStatus,
    /// Start, in UTC (RFC 3339).
    pub scheduled_time: String,
    /// False when an earlier request with the same idempotency key created it.
    pub created: bool,
}

/// Arguments naming one conversation (`getConversationStatus`, `cancelConversation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationRef {
    /// The conversation's id.
    pub conversation_id: String,
}

/// `rescheduleConversation` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct RescheduleConversation {
    /// The conversation's id.
    pub conversation_id: String,
    /// The new start: RFC 3339 with a UTC offset. Kept to the millisecond: finer digits are
    /// dropped (truncated), and the result shows the time in UTC.
    pub scheduled_time: String,
}

/// Everything known about one conversation (`getConversationStatus`, and the entries of
/// `listConversations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetails {
    /// The conversation's id.
    pub conversation_id: String,
    /// Where it is in its lifecycle.
    pub status: ConversationStatus,
    /// What it is about.
    pub topic: String,
    /// Who takes part.
    pub participants: Vec<String>,
    /// Start, in UTC (RFC 3339).
    pub scheduled_time: String,
    /// IANA time zone, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// How many times the dispatcher started it.
    pub attempts: u32,
    /// When the last run started (UTC), if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it completed, failed or was cancelled (UTC), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The last run's error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Metadata, as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

/// `listConversations` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ListConversations {
    /// Only conversations in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ConversationStatus>,
    /// Only conversations starting at or after this time (RFC 3339 with offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Only conversations starting before this time (RFC 3339 with offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Page size, 1 to 500. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `listConversations` arguments after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidList {
    /// Status filter.
    pub status: Option<ConversationStatus>,
    /// Lower bound (inclusive).
    pub from: Option<Timestamp>,
    /// Upper bound (exclusive).
    pub to: Option<Timestamp>,
    /// Page size.
    pub limit: u32,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
}

impl ListConversations {
    /// Checks every argument; the error names the first bad one.
    pub fn validate(&self) -> Result<ValidList, InvalidArgument> {
        let from = self
            .from
            .as_deref()
            .map(|v| parse_time("from", v))
            .transpose()?;
        let to = self
            .to
            .as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?;
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(InvalidArgument::new("to", "must be after `from`"));
        }
        let limit = self.limit.unwrap_or(limits::DEFAULT_LIST_LIMIT);
        if !(1..=limits::LIST_LIMIT).contains(&limit) {
            return Err(InvalidArgument::new(
                "limit",
                format!("must be between 1 and {}", limits::LIST_LIMIT),
            ));
        }
        Ok(ValidList {
            status: self.status,
            from,
            to,
            limit,
            cursor: self.cursor.clone(),
        })
    }
}

/// `listConversations` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ConversationPage {
    /// This page, ordered by scheduled time then id.
    pub conversations: Vec<ConversationDetails>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schedule(v: Value) -> ScheduleConversation {
        serde_json::from_value(v).unwrap()
    }

    fn base() -> Value {
        json!({
            "topic": "Standup",
            "participants": ["a@x.example"],
            "scheduledTime": "2026-12-01T09:30:00Z"
        })
    }

    fn with(field: &str, value: Value) -> ScheduleConversation {
        let mut v = base();
        v[field] = value;
        schedule(v)
    }

    #[test]
    fn each_bad_argument_is_named() {
        let cases = [
            (with("topic", json!("  ")), "topic"),
            (with("topic", json!("x".repeat(501))), "topic"),
            (with("participants", json!([])), "participants"),
            (with("participants", json!(["a", " "])), "participants[1]"),
            (
                with("scheduledTime", json!("2026-12-01T09:30:00")),
                "scheduledTime",
            ),
            (
                with("scheduledTime", json!("next tuesday")),
                "scheduledTime",
            ),
            (with("timezone", json!("Mars/Olympus_Mons")), "timezone"),
            (with("durationMinutes", json!(0)), "durationMinutes"),
            (with("durationMinutes", json!(1441)), "durationMinutes"),
            (
                with("metadata", json!({"blob": "x".repeat(17 * 1024)})),
                "metadata",
            ),
            (with("idempotencyKey", json!("has space")), "idempotencyKey"),
            (with("idempotencyKey", json!("")), "idempotencyKey"),
        ];
        for (args, field) in cases {
            let err = args.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.to_string().contains(field));
        }
    }

    #[test]
    fn valid_request_is_normalized_to_utc() {
        let v = with("scheduledTime", json!("2026-12-01T09:30:00-05:00"))
            .validate()
            .unwrap();
        assert_eq!(v.scheduled_time.to_string(), "2026-12-01T14:30:00Z");
        assert_eq!(v.duration_minutes, 30);
        assert!(v.metadata.is_empty());
    }

    #[test]
    fn fingerprint_ignores_the_key_and_formatting_but_not_the_payload() {
        let mut a = base();
        a["idempotencyKey"] = json!("k1");
        let mut b = base();
        b["idempotencyKey"] = json!("k2");
        b["scheduledTime"] = json!("2026-12-01T10:30:00+01:00"); // same instant
        let fa = schedule(a).validate().unwrap().fingerprint();
        let fb = schedule(b).validate().unwrap().fingerprint();
        assert_eq!(fa, fb);
        let fc = with("topic", json!("Other"))
            .validate()
            .unwrap()
            .fingerprint();
        assert_ne!(fa, fc);
    }

    #[test]
    fn sub_millisecond_digits_are_truncated_everywhere() {
        let fine = with(
            "scheduledTime",
            json!("2030-01-01T10:00:00.123456789+02:00"),
        )
        .validate()
        .unwrap();
        assert_eq!(fine.scheduled_time.to_string(), "2030-01-01T08:00:00.123Z");
        assert_eq!(fine.scheduled_time.subsec_nanosecond(), 123_000_000);
        // The retry that sends back the returned (truncated) time is the same request.
        let coarse = with("scheduledTime", json!("2030-01-01T08:00:00.123Z"))
            .validate()
            .unwrap();
        assert_eq!(fine.fingerprint(), coarse.fingerprint());
        assert!(fine.fingerprint().contains("2030-01-01T08:00:00.123Z"));
        // Before the epoch too: the digits are dropped (rounded down).
        let old = parse_time("from", "1969-12-31T23:59:59.9999Z").unwrap();
        assert_eq!(old.to_string(), "1969-12-31T23:59:59.999Z");
        let list = ListConversations {
            from: Some("2030-01-01T00:00:00.0009Z".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(list.from.unwrap().to_string(), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn list_arguments() {
        let ok = ListConversations {
            limit: Some(500),
            ..Default::default()
        };
        assert_eq!(ok.validate().unwrap().limit, 500);
        let err = ListConversations {
            limit: Some(501),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "limit");
        let err = ListConversations {
            from: Some("2026-12-02T00:00:00Z".into()),
            to: Some("2026-12-01T00:00:00Z".into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.field, "to");
        let status: ConversationStatus = serde_json::from_value(json!("cancelled")).unwrap();
        assert!(status.is_final());
        assert_eq!(
            ConversationStatus::parse("running"),
            Some(ConversationStatus::Running)
        );
    }
}
