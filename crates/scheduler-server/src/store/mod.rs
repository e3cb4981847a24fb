//! Durable state of the Scheduler: conversations (with idempotency keys and dispatch leases),
//! registered clients (API keys stored hashed) and settings, behind the [`Store`] trait.
//!
//! [`SqliteStore`] is the embedded default (a file or in memory). The trait is shaped so a
//! PostgreSQL store shared by several replicas can be added without changing the tools or the
//! dispatcher: every operation is one transaction, claims use leases with an owner, and time
//! is passed in (never read inside the store), so tests control it.

mod sqlite;

pub use sqlite::SqliteStore;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use jiff::Timestamp;
use scheduler::domain::{ConversationStatus, ValidList, ValidSchedule};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A boxed `Send` future (keeps [`Store`] object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One conversation as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// Id (a UUID v4, as text).
    pub id: String,
    /// Lifecycle state.
    pub status: ConversationStatus,
    /// What it is about.
    pub topic: String,
    /// Who takes part.
    pub participants: Vec<String>,
    /// Start, UTC.
    pub scheduled_time: Timestamp,
    /// IANA time zone, if given.
    pub timezone: Option<String>,
    /// Length in minutes.
    pub duration_minutes: u32,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Idempotency key the creating request carried, if any.
    pub idempotency_key: Option<String>,
    /// Fingerprint of the creating request ([`ValidSchedule::fingerprint`]).
    pub fingerprint: String,
    /// The client that created it (token subject), if known.
    pub owner: Option<String>,
    /// How many times a run started.
    pub attempts: u32,
    /// When the last run started.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    pub completed_at: Option<Timestamp>,
    /// The last run's error.
    pub last_error: Option<String>,
    /// Dispatcher currently holding it (while running).
    pub lease_owner: Option<String>,
    /// Until when that dispatcher holds it.
    pub lease_until: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When a pending retry is due, if that differs from `scheduled_time` (the listed time
    /// stays the one asked for). Kept in backups so a restore does not run retries early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
}

/// What [`Store::schedule`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    /// The conversation (new, or the one the idempotency key created before).
    pub conversation: Conversation,
    /// False when the idempotency key matched an earlier request with the same payload.
    pub created: bool,
}

/// A page of [`Store::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The conversations, by scheduled time then id.
    pub conversations: Vec<Conversation>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// How a run ended, for [`Store::finish_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// The run succeeded: the conversation is `completed`.
    Completed,
    /// The run failed and will be retried at `retry_at` (back to `scheduled`, time unchanged
    /// for listing, due again at `retry_at`).
    Retry {
        /// The error, for `lastError`.
        error: String,
        /// When to try again.
        retry_at: Timestamp,
    },
    /// The run failed for good: the conversation is `failed`.
    Failed {
        /// The error, for `lastError`.
        error: String,
    },
}

/// A registered API client. The key itself is never stored, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Client {
    /// The client id (public).
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Hash of the API key (`sha256:<hex>` of a random key; see the auth module).
    pub key_hash: String,
    /// Scopes the client may ask for.
    pub scopes: Vec<String>,
    /// Disabled clients cannot get tokens.
    pub disabled: bool,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// Everything in a store, for backup and recovery (one JSON document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    /// Format version of this document.
    pub format: u32,
    /// When it was taken.
    pub exported_at: Timestamp,
    /// Registered clients (keys hashed).
    pub clients: Vec<Client>,
    /// Settings that are not secret (secret ones, like signing keys, are left out).
    pub settings: Map<String, Value>,
    /// All conversations, in every state.
    pub conversations: Vec<Conversation>,
}

/// The current [`Backup::format`].
pub const BACKUP_FORMAT: u32 = 1;

/// Why a store operation failed.
#[derive(Debug)]
pub enum StoreError {
    /// No conversation (or client) with that id.
    NotFound,
    /// The idempotency key was used before with a different payload.
    IdempotencyConflict {
        /// The conversation the key created.
        existing_id: String,
    },
    /// The conversation is in a state that does not allow the change.
    InvalidTransition {
        /// Its current state.
        from: ConversationStatus,
        /// What was attempted (`cancel`, `reschedule`).
        action: &'static str,
    },
    /// A client with that id exists already.
    Duplicate,
    /// The cursor was not produced by this store.
    BadCursor,
    /// Import into a store that is not empty.
    NotEmpty,
    /// The backend failed (I/O, corruption, a bug); the message is for operators.
    Backend(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::IdempotencyConflict { existing_id } => write!(
                f,
                "idempotency key already used for conversation {existing_id} with different arguments"
            ),
            StoreError::InvalidTransition { from, action } => {
                write!(f, "cannot {action} a conversation that is {from}")
            }
            StoreError::Duplicate => f.write_str("already exists"),
            StoreError::BadCursor => f.write_str("invalid cursor"),
            StoreError::NotEmpty => f.write_str("the store is not empty"),
            StoreError::Backend(m) => write!(f, "store failure: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Durable state of the Scheduler. Every method is one transaction. Times are passed in.
pub trait Store: Send + Sync + 'static {
    /// Creates a conversation in state `scheduled`, unless `schedule.idempotency_key` was
    /// used before: then the earlier conversation is returned with `created: false` if its
    /// fingerprint matches, else [`StoreError::IdempotencyConflict`]. The key check and the
    /// insert are one transaction, so concurrent retries create exactly one conversation.
    fn schedule<'a>(
        &'a self,
        id: String,
        schedule: &'a ValidSchedule,
        owner: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Scheduled, StoreError>>;

    /// One conversation.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Conversation, StoreError>>;

    /// A page of conversations matching the filter, ordered by scheduled time then id.
    fn list<'a>(&'a self, query: &'a ValidList) -> BoxFuture<'a, Result<Page, StoreError>>;

    /// Cancels a conversation that is `scheduled` or `running` (a running one is not
    /// interrupted, but its result is ignored). Final states give `InvalidTransition`.
    fn cancel<'a>(
        &'a self,
        id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Conversation, StoreError>>;

    /// Moves a `scheduled` conversation to another time; any other state gives
    /// `InvalidTransition`.
    fn reschedule<'a>(
        &'a self,
        id: &'a str,
        when: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Conversation, StoreError>>;

    /// Claims up to `limit` conversations that are due (`scheduled` and due at or before
    /// `now`, or `running` with a lease that expired before `now`): marks them `running`,
    /// increments `attempts`, sets `started_at`, and leases them to `owner` until
    /// `now + lease`. Earliest due first.
    fn claim_due<'a>(
        &'a self,
        owner: &'a str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Conversation>, StoreError>>;

    /// Records how a run ended, if `owner` still holds the lease (returns false otherwise:
    /// the lease expired and someone else took it, or it was cancelled meanwhile).
    fn finish_run<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        outcome: RunOutcome,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// When the next conversation becomes due (a `scheduled` one, or a lease that expires),
    /// so the dispatcher can sleep until then.
    fn next_due(&self) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>>;

    /// Checks that the store answers (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Registers a client; `Duplicate` if the id exists.
    fn create_client<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), StoreError>>;

    /// One client.
    fn get_client<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Client, StoreError>>;

    /// All clients, by id.
    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<Client>, StoreError>>;

    /// Enables or disables a client.
    fn set_client_disabled<'a>(
        &'a self,
        id: &'a str,
        disabled: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A setting, if set.
    fn get_setting<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>>;

    /// Sets a setting. `secret` settings are left out of backups.
    fn set_setting<'a>(
        &'a self,
        key: &'a str,
        value: &'a Value,
        secret: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Everything except secret settings.
    fn export(&self, now: Timestamp) -> BoxFuture<'_, Result<Backup, StoreError>>;

    /// Loads a backup into an empty store (`NotEmpty` otherwise), in one transaction.
    fn import<'a>(&'a self, backup: &'a Backup) -> BoxFuture<'a, Result<(), StoreError>>;
}

#[cfg(test)]
fn _object_safe(_: Box<dyn Store>) {}
