//! [`SqliteStore`]: the embedded [`Store`], on a SQLite file (WAL) or in memory.
//!
//! # Design
//!
//! - **One writer.** All changes go through one connection owned by a dedicated OS thread
//!   (see `writer`), fed by a channel; each command carries a oneshot for its reply, so the
//!   async runtime never blocks on SQLite.
//! - **Group commit.** The writer drains every queued command and runs them in one
//!   transaction, each in its own savepoint (a failing command does not abort the others),
//!   then replies after the commit. Under concurrency many `schedule` calls share one commit.
//! - **Concurrent readers.** For a file store, reads (`get`, `list`, `next_due`, `ping`,
//!   clients, settings, `export`) run on a small pool of reader connections on tokio's
//!   blocking threads; WAL lets them proceed while the writer commits. The in-memory store is
//!   one private connection, so its reads are queued to the writer thread too.
//! - **Durability.** `journal_mode=WAL`, `synchronous=NORMAL`: a committed write survives a
//!   process crash; on power loss the last commits before the crash may be lost, never
//!   corrupted.
//! - **Schema.** Versioned migrations applied at open in one transaction (see `schema`);
//!   a database with a newer schema than this build knows is refused.
//! - **Time.** Stored as integer milliseconds (UTC): timestamps passed in are kept at
//!   millisecond precision, and the conversations returned carry those truncated times.
//!
//! Dropping the store closes the writer's queue: the writer finishes what is queued and the
//! drop waits for its thread to exit.

mod ops;
mod readers;
mod schema;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::Connection;
use scheduler::domain::{ConversationStatus, ValidList, ValidSchedule};
use serde_json::Value;

use self::ops::{Inserted, ListQuery, NewConversation, millis, truncate};
use self::readers::Readers;
use self::writer::Writer;
use super::{
    Backup, BoxFuture, Client, Conversation, Page, RunOutcome, Scheduled, Store, StoreError,
};

/// The SQLite [`Store`]: a database file in WAL mode, or a private in-memory database.
///
/// ```
/// use scheduler_server::store::{SqliteStore, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SqliteStore::open(dir.path().join("scheduler.db"))?;
/// store.ping().await?;
/// assert_eq!(store.next_due().await?, None);
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    writer: Writer,
    /// Reader connections (file stores); `None` for in-memory, whose reads go to the writer.
    readers: Option<Arc<Readers>>,
    location: String,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it if needed, and brings its schema up to
    /// date. Fails if the file is not a SQLite database or has a newer schema than this
    /// build knows.
    ///
    /// Blocks while it opens and migrates; call it at startup (or from a blocking thread).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let conn = schema::open_writer(&path)?;
        let location = path.display().to_string();
        Self::start(conn, Some(Arc::new(Readers::new(path))), location)
    }

    /// A new, empty, private in-memory store (for tests and demos; lost when dropped).
    pub fn in_memory() -> Result<Self, StoreError> {
        let conn = schema::open_memory()?;
        Self::start(conn, None, ":memory:".to_owned())
    }

    fn start(
        conn: Connection,
        readers: Option<Arc<Readers>>,
        location: String,
    ) -> Result<Self, StoreError> {
        let writer = Writer::spawn(conn, "sqlite-writer")?;
        Ok(Self {
            writer,
            readers,
            location,
        })
    }

    /// Runs a write operation on the writer thread, in the next group transaction.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (job, reply) = writer::job(op);
        self.writer.submit(job)?;
        reply.await.map_err(|_| {
            StoreError::Backend("the store writer thread stopped before replying".to_owned())
        })?
    }

    /// Runs a read operation on a reader connection (file) or the writer thread (memory).
    async fn read<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.write(op).await;
        };
        let readers = Arc::clone(readers);
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::Backend(format!("store reads need a tokio runtime: {e}")))?;
        runtime
            .spawn_blocking(move || readers.run(op))
            .await
            .map_err(|e| StoreError::Backend(format!("store reader task failed: {e}")))?
    }
}

fn backend(op: &str, detail: impl fmt::Display) -> StoreError {
    StoreError::Backend(format!("{op}: {detail}"))
}

impl Store for SqliteStore {
    fn schedule<'a>(
        &'a self,
        id: String,
        schedule: &'a ValidSchedule,
        owner: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Scheduled, StoreError>> {
        Box::pin(async move {
            // Serialize here, on the caller's task, to keep the writer thread's work to SQL.
            let participants_json = serde_json::to_string(&schedule.participants)
                .map_err(|e| backend("schedule: participants", e))?;
            let metadata_json = serde_json::to_string(&schedule.metadata)
                .map_err(|e| backend("schedule: metadata", e))?;
            let now = truncate(now);
            let scheduled_time = truncate(schedule.scheduled_time);
            let fingerprint = schedule.fingerprint();
            let new = NewConversation {
                id: id.clone(),
                topic: schedule.topic.clone(),
                participants_json,
                scheduled_ms: millis(scheduled_time),
                timezone: schedule.timezone.clone(),
                duration_minutes: schedule.duration_minutes,
                metadata_json,
                idempotency_key: schedule.idempotency_key.clone(),
                fingerprint: fingerprint.clone(),
                owner: owner.map(str::to_owned),
                now_ms: millis(now),
            };
            match self.write(move |conn| ops::schedule(conn, &new)).await? {
                Inserted::Existing(conversation) => Ok(Scheduled {
                    conversation: *conversation,
                    created: false,
                }),
                Inserted::Created => Ok(Scheduled {
                    conversation: Conversation {
                        id,
                        status: ConversationStatus::Scheduled,
                        topic: schedule.topic.clone(),
                        participants: schedule.participants.clone(),
                        scheduled_time,
                        timezone: schedule.timezone.clone(),
                        duration_minutes: schedule.duration_minutes,
                        metadata: schedule.metadata.clone(),
                        idempotency_key: schedule.idempotency_key.clone(),
                        fingerprint,
                        owner: owner.map(str::to_owned),
                        attempts: 0,
                        started_at: None,
                        completed_at: None,
                        last_error: None,
                        lease_owner: None,
                        lease_until: None,
                        created_at: now,
                        updated_at: now,
                        next_attempt_at: None,
                    },
                    created: true,
                }),
            }
        })
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Conversation, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.read(move |conn| ops::get(conn, &id)).await
        })
    }

    fn list<'a>(&'a self, query: &'a ValidList) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let after = query
                .cursor
                .as_deref()
                .map(ops::decode_cursor)
                .transpose()?;
            let query = ListQuery {
                status: query.status,
                from_ms: query.from.map(millis),
                to_ms: query.to.map(millis),
                after,
                limit: query.limit,
            };
            self.read(move |conn| ops::list(conn, &query)).await
        })
    }

    fn cancel<'a>(
        &'a self,
        id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Conversation, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            let now_ms = millis(now);
            self.write(move |conn| ops::cancel(conn, &id, now_ms)).await
        })
    }

    fn reschedule<'a>(
        &'a self,
        id: &'a str,
        when: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<Conversation, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            let (when_ms, now_ms) = (millis(when), millis(now));
            self.write(move |conn| ops::reschedule(conn, &id, when_ms, now_ms))
                .await
        })
    }

    fn claim_due<'a>(
        &'a self,
        owner: &'a str,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Conversation>, StoreError>> {
        Box::pin(async move {
            let owner = owner.to_owned();
            let now_ms = millis(now);
            let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
            self.write(move |conn| ops::claim_due(conn, &owner, now_ms, lease_ms, limit))
                .await
        })
    }

    fn finish_run<'a>(
        &'a self,
        id: &'a str,
        owner: &'a str,
        outcome: RunOutcome,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let (id, owner) = (id.to_owned(), owner.to_owned());
            let now_ms = millis(now);
            self.write(move |conn| ops::finish_run(conn, &id, &owner, &outcome, now_ms))
                .await
        })
    }

    fn next_due(&self) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        Box::pin(self.read(ops::next_due))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.read(ops::ping))
    }

    fn create_client<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = client.clone();
            client.created_at = truncate(client.created_at);
            self.write(move |conn| ops::create_client(conn, &client))
                .await
        })
    }

    fn get_client<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Client, StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.read(move |conn| ops::get_client(conn, &id)).await
        })
    }

    fn list_clients(&self) -> BoxFuture<'_, Result<Vec<Client>, StoreError>> {
        Box::pin(self.read(ops::list_clients))
    }

    fn set_client_disabled<'a>(
        &'a self,
        id: &'a str,
        disabled: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let id = id.to_owned();
            self.write(move |conn| ops::set_client_disabled(conn, &id, disabled))
                .await
        })
    }

    fn get_setting<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Value>, StoreError>> {
        Box::pin(async move {
            let key = key.to_owned();
            self.read(move |conn| ops::get_setting(conn, &key)).await
        })
    }

    fn set_setting<'a>(
        &'a self,
        key: &'a str,
        value: &'a Value,
        secret: bool,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let key = key.to_owned();
            let json = serde_json::to_string(value).map_err(|e| backend("set_setting", e))?;
            self.write(move |conn| ops::set_setting(conn, &key, &json, secret))
                .await
        })
    }

    fn export(&self, now: Timestamp) -> BoxFuture<'_, Result<Backup, StoreError>> {
        Box::pin(self.read(move |conn| ops::export(conn, now)))
    }

    fn import<'a>(&'a self, backup: &'a Backup) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let backup = backup.clone();
            self.write(move |conn| ops::import(conn, &backup)).await
        })
    }
}
