//! The SQL of every store operation, as synchronous functions on a connection.
//!
//! Writes run on the writer thread inside a savepoint of a group transaction; reads run on a
//! reader connection (or, for the in-memory store, on the writer thread too). Each function
//! is correct on its own inside any transaction: checks and changes happen in the same
//! transaction, so no other writer can interleave.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params, params_from_iter};
use scheduler::domain::ConversationStatus;
use serde_json::{Map, Value};

use crate::store::{BACKUP_FORMAT, Backup, Client, Conversation, Page, RunOutcome, StoreError};

/// Adds the failing operation to a SQLite error, as [`StoreError::Backend`].
pub(super) trait Ctx<T> {
    /// Maps the error to `Backend("<op>: <error>")`.
    fn ctx(self, op: &str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, op: &str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Backend(format!("{op}: {e}")))
    }
}

fn is_constraint(err: &rusqlite::Error) -> bool {
    err.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("stored {what} is invalid: {detail}"))
}

// ---- time -------------------------------------------------------------------------------

/// A timestamp as stored: integer milliseconds since the Unix epoch.
pub(super) fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// A timestamp at the precision the store keeps (milliseconds).
pub(super) fn truncate(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

fn timestamp(ms: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| corrupt(what, e))
}

fn opt_timestamp(ms: Option<i64>, what: &str) -> Result<Option<Timestamp>, StoreError> {
    ms.map(|ms| timestamp(ms, what)).transpose()
}

// ---- cursors ----------------------------------------------------------------------------

/// The opaque `list` cursor of the row after which the next page starts:
/// base64url of `<scheduled_time_ms>:<id>`.
pub(super) fn encode_cursor(scheduled_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{scheduled_ms}:{id}"))
}

/// Reads a cursor made by [`encode_cursor`]; anything else is [`StoreError::BadCursor`].
pub(super) fn decode_cursor(cursor: &str) -> Result<(i64, String), StoreError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| StoreError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
    let (ms, id) = text.split_once(':').ok_or(StoreError::BadCursor)?;
    let ms: i64 = ms.parse().map_err(|_| StoreError::BadCursor)?;
    if id.is_empty() {
        return Err(StoreError::BadCursor);
    }
    Ok((ms, id.to_owned()))
}

// ---- conversations ----------------------------------------------------------------------

/// The columns of a [`Conversation`], in the order [`RawConversation::read`] expects.
macro_rules! conversation_columns {
    () => {
        "id, status, topic, participants, scheduled_time, timezone, duration_minutes, \
         metadata, idempotency_key, fingerprint, owner, attempts, started_at, completed_at, \
         last_error, lease_owner, lease_until, created_at, updated_at, due_at"
    };
}

/// A conversation row as SQLite returns it, before decoding JSON and times.
struct RawConversation {
    id: String,
    status: String,
    topic: String,
    participants: String,
    scheduled_time: i64,
    timezone: Option<String>,
    duration_minutes: i64,
    metadata: String,
    idempotency_key: Option<String>,
    fingerprint: String,
    owner: Option<String>,
    attempts: i64,
    started_at: Option<i64>,
    completed_at: Option<i64>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
    due_at: i64,
}

impl RawConversation {
    fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            status: row.get(1)?,
            topic: row.get(2)?,
            participants: row.get(3)?,
            scheduled_time: row.get(4)?,
            timezone: row.get(5)?,
            duration_minutes: row.get(6)?,
            metadata: row.get(7)?,
            idempotency_key: row.get(8)?,
            fingerprint: row.get(9)?,
            owner: row.get(10)?,
            attempts: row.get(11)?,
            started_at: row.get(12)?,
            completed_at: row.get(13)?,
            last_error: row.get(14)?,
            lease_owner: row.get(15)?,
            lease_until: row.get(16)?,
            created_at: row.get(17)?,
            updated_at: row.get(18)?,
            due_at: row.get(19)?,
        })
    }

    fn decode(self) -> Result<Conversation, StoreError> {
        let status = ConversationStatus::parse(&self.status)
            .ok_or_else(|| corrupt("status", &self.status))?;
        let participants: Vec<String> =
            serde_json::from_str(&self.participants).map_err(|e| corrupt("participants", e))?;
        let metadata: Map<String, Value> =
            serde_json::from_str(&self.metadata).map_err(|e| corrupt("metadata", e))?;
        Ok(Conversation {
            status,
            participants,
            metadata,
            scheduled_time: timestamp(self.scheduled_time, "scheduled_time")?,
            duration_minutes: u32::try_from(self.duration_minutes)
                .map_err(|e| corrupt("duration_minutes", e))?,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
            started_at: opt_timestamp(self.started_at, "started_at")?,
            completed_at: opt_timestamp(self.completed_at, "completed_at")?,
            lease_until: opt_timestamp(self.lease_until, "lease_until")?,
            created_at: timestamp(self.created_at, "created_at")?,
            updated_at: timestamp(self.updated_at, "updated_at")?,
            // A pending retry is due at another time than the one listed.
            next_attempt_at: if self.status == "scheduled" && self.due_at != self.scheduled_time {
                Some(timestamp(self.due_at, "due_at")?)
            } else {
                None
            },
            id: self.id,
            topic: self.topic,
            timezone: self.timezone,
            idempotency_key: self.idempotency_key,
            fingerprint: self.fingerprint,
            owner: self.owner,
            last_error: self.last_error,
            lease_owner: self.lease_owner,
        })
    }
}

/// Runs `sql` (a query or `... RETURNING` the conversation columns) and decodes one row.
fn one_conversation(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    op: &str,
) -> Result<Option<Conversation>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).ctx(op)?;
    let raw = stmt
        .query_row(params, RawConversation::read)
        .optional()
        .ctx(op)?;
    raw.map(RawConversation::decode).transpose()
}

fn find(conn: &Connection, id: &str, op: &str) -> Result<Option<Conversation>, StoreError> {
    one_conversation(
        conn,
        concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE id = ?1"
        ),
        [id],
        op,
    )
}

/// A conversation to insert, prepared (JSON serialized, times truncated) off the writer
/// thread.
pub(super) struct NewConversation {
    pub(super) id: String,
    pub(super) topic: String,
    pub(super) participants_json: String,
    pub(super) scheduled_ms: i64,
    pub(super) timezone: Option<String>,
    pub(super) duration_minutes: u32,
    pub(super) metadata_json: String,
    pub(super) idempotency_key: Option<String>,
    pub(super) fingerprint: String,
    pub(super) owner: Option<String>,
    pub(super) now_ms: i64,
}

/// What [`schedule`] did.
pub(super) enum Inserted {
    /// The row was inserted as given.
    Created,
    /// The idempotency key was used before, with the same fingerprint.
    Existing(Box<Conversation>),
}

/// Inserts a conversation unless its idempotency key exists (then returns the earlier one if
/// the fingerprint matches, else `IdempotencyConflict`).
pub(super) fn schedule(conn: &Connection, new: &NewConversation) -> Result<Inserted, StoreError> {
    const OP: &str = "schedule";
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO conversations (id, status, topic, participants, scheduled_time, \
             timezone, duration_minutes, metadata, idempotency_key, fingerprint, owner, \
             attempts, due_at, created_at, updated_at) \
             VALUES (?1, 'scheduled', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?4, ?11, ?11) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .ctx(OP)?;
    let inserted = insert.execute(params![
        new.id,
        new.topic,
        new.participants_json,
        new.scheduled_ms,
        new.timezone,
        new.duration_minutes,
        new.metadata_json,
        new.idempotency_key,
        new.fingerprint,
        new.owner,
        new.now_ms,
    ]);
    match inserted {
        Ok(1) => return Ok(Inserted::Created),
        Ok(_) => {}
        Err(e) if is_constraint(&e) => return Err(StoreError::Duplicate),
        Err(e) => return Err(e).ctx(OP),
    }
    let Some(key) = new.idempotency_key.as_deref() else {
        return Err(StoreError::Backend(format!(
            "{OP}: insert of {} was ignored without an idempotency key",
            new.id
        )));
    };
    let existing = one_conversation(
        conn,
        concat!(
            "SELECT ",
            conversation_columns!(),
            " FROM conversations WHERE idempotency_key = ?1"
        ),
        [key],
        OP,
    )?
    .ok_or_else(|| StoreError::Backend(format!("{OP}: idempotency key vanished")))?;
    if existing.fingerprint == new.fingerprint {
        Ok(Inserted::Existing(Box::new(existing)))
    } else {
        Err(StoreError::IdempotencyConflict {
            existing_id: existing.id,
        })
    }
}

/// One conversation, or `NotFound`.
pub(super) fn get(conn: &Connection, id: &str) -> Result<Conversation, StoreError> {
    find(conn, id, "get")?.ok_or(StoreError::NotFound)
}

/// A decoded `list` query.
pub(super) struct ListQuery {
    pub(super) status: Option<ConversationStatus>,
    pub(super) from_ms: Option<i64>,
    pub(super) to_ms: Option<i64>,
    pub(super) after: Option<(i64, String)>,
    pub(super) limit: u32,
}

/// One page, by (scheduled_time, id), after the cursor position.
pub(super) fn list(conn: &Connection, query: &ListQuery) -> Result<Page, StoreError> {
    const OP: &str = "list";
    let mut sql = String::from(concat!(
        "SELECT ",
        conversation_columns!(),
        " FROM conversations WHERE 1 = 1"
    ));
    let mut args: Vec<SqlValue> = Vec::with_capacity(6);
    if let Some(status) = query.status {
        sql.push_str(" AND status = ?");
        args.push(SqlValue::Text(status.as_str().to_owned()));
    }
    if let Some(from) = query.from_ms {
        sql.push_str(" AND scheduled_time >= ?");
        args.push(SqlValue::Integer(from));
    }
    if let Some(to) = query.to_ms {
        sql.push_str(" AND scheduled_time < ?");
        args.push(SqlValue::Integer(to));
    }
    if let Some((ms, id)) = &query.after {
        sql.push_str(" AND (scheduled_time, id) > (?, ?)");
        args.push(SqlValue::Integer(*ms));
        args.push(SqlValue::Text(id.clone()));
    }
    // A literal LIMIT (the largest page + 1): with a bound `LIMIT ?` SQLite re-prepares the
    // statement on every step. The loop below stops after `limit + 1` rows.
    sql.push_str(" ORDER BY scheduled_time, id LIMIT 501");
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX).min(500);

    let mut stmt = conn.prepare_cached(&sql).ctx(OP)?;
    let rows = stmt
        .query_map(params_from_iter(args), RawConversation::read)
        .ctx(OP)?;
    let mut page = Vec::with_capacity(limit.min(512));
    let mut more = false;
    for row in rows {
        let raw = row.ctx(OP)?;
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(raw.decode()?);
    }
    let next_cursor = match page.last() {
        Some(last) if more => Some(encode_cursor(millis(last.scheduled_time), &last.id)),
        _ => None,
    };
    Ok(Page {
        conversations: page,
        next_cursor,
    })
}

/// After a conditional update matched nothing: `NotFound`, or why the state forbids it.
fn refused(conn: &Connection, id: &str, action: &'static str) -> StoreError {
    match find(conn, id, action) {
        Ok(Some(current)) => StoreError::InvalidTransition {
            from: current.status,
            action,
        },
        Ok(None) => StoreError::NotFound,
        Err(e) => e,
    }
}

/// `scheduled` or `running` → `cancelled`.
pub(super) fn cancel(conn: &Connection, id: &str, now_ms: i64) -> Result<Conversation, StoreError> {
    let updated = one_conversation(
        conn,
        concat!(
            "UPDATE conversations SET status = 'cancelled', completed_at = ?2, \
             lease_owner = NULL, lease_until = NULL, updated_at = ?2 \
             WHERE id = ?1 AND status IN ('scheduled', 'running') RETURNING ",
            conversation_columns!()
        ),
        params![id, now_ms],
        "cancel",
    )?;
    updated.ok_or_else(|| refused(conn, id, "cancel"))
}

/// Moves a `scheduled` conversation (and its due time) to `when_ms`.
pub(super) fn reschedule(
    conn: &Connection,
    id: &str,
    when_ms: i64,
    now_ms: i64,
) -> Result<Conversation, StoreError> {
    let updated = one_conversation(
        conn,
        concat!(
            "UPDATE conversations SET scheduled_time = ?2, due_at = ?2, updated_at = ?3 \
             WHERE id = ?1 AND status = 'scheduled' RETURNING ",
            conversation_columns!()
        ),
        params![id, when_ms, now_ms],
        "reschedule",
    )?;
    updated.ok_or_else(|| refused(conn, id, "reschedule"))
}

/// Leases up to `limit` due conversations to `owner`, earliest due first.
///
/// The two arms read the partial indexes `conversations_due` and `conversations_lease`
/// (forced with `INDEXED BY`: without statistics the planner would pick the status index and
/// sort every pending row), merged in (due, id) order, so a claim costs O(limit) however
/// many conversations are pending.
pub(super) fn claim_due(
    conn: &Connection,
    owner: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: usize,
) -> Result<Vec<Conversation>, StoreError> {
    const OP: &str = "claim_due";
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let ids: Vec<String> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, due_at AS due FROM conversations INDEXED BY conversations_due \
                     WHERE status = 'scheduled' AND due_at <= ?1 \
                 UNION ALL \
                 SELECT id, lease_until AS due FROM conversations INDEXED BY conversations_lease \
                     WHERE status = 'running' AND lease_until <= ?1 \
                 ORDER BY due, id LIMIT 4096",
            )
            .ctx(OP)?;
        // A literal LIMIT: a bound one makes SQLite re-prepare the statement on every call.
        let rows = stmt.query_map(params![now_ms], |row| row.get(0)).ctx(OP)?;
        rows.take(usize::try_from(limit).unwrap_or(usize::MAX).min(4096))
            .collect::<rusqlite::Result<_>>()
            .ctx(OP)?
    };
    let lease_until = now_ms.saturating_add(lease_ms);
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let conversation = one_conversation(
            conn,
            concat!(
                "UPDATE conversations SET status = 'running', attempts = attempts + 1, \
                 started_at = ?2, lease_owner = ?3, lease_until = ?4, updated_at = ?2 \
                 WHERE id = ?1 RETURNING ",
                conversation_columns!()
            ),
            params![id, now_ms, owner, lease_until],
            OP,
        )?
        .ok_or_else(|| StoreError::Backend(format!("{OP}: {id} vanished")))?;
        claimed.push(conversation);
    }
    Ok(claimed)
}

/// Records a run's outcome if `owner` still holds the running conversation's lease.
pub(super) fn finish_run(
    conn: &Connection,
    id: &str,
    owner: &str,
    outcome: &RunOutcome,
    now_ms: i64,
) -> Result<bool, StoreError> {
    const OP: &str = "finish_run";
    const WHERE: &str = " WHERE id = ?1 AND status = 'running' AND lease_owner = ?2";
    let changed = match outcome {
        RunOutcome::Completed => {
            let sql = format!(
                "UPDATE conversations SET status = 'completed', completed_at = ?3, \
                 last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = ?3{WHERE}"
            );
            conn.prepare_cached(&sql)
                .ctx(OP)?
                .execute(params![id, owner, now_ms])
        }
        RunOutcome::Retry { error, retry_at } => {
            let sql = format!(
                "UPDATE conversations SET status = 'scheduled', last_error = ?4, due_at = ?5, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ?3{WHERE}"
            );
            conn.prepare_cached(&sql).ctx(OP)?.execute(params![
                id,
                owner,
                now_ms,
                error,
                millis(*retry_at)
            ])
        }
        RunOutcome::Failed { error } => {
            let sql = format!(
                "UPDATE conversations SET status = 'failed', completed_at = ?3, last_error = ?4, \
                 lease_owner = NULL, lease_until = NULL, updated_at = ?3{WHERE}"
            );
            conn.prepare_cached(&sql)
                .ctx(OP)?
                .execute(params![id, owner, now_ms, error])
        }
    }
    .ctx(OP)?;
    Ok(changed == 1)
}

/// The earliest due time of a `scheduled` conversation or lease expiry of a `running` one.
pub(super) fn next_due(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    const OP: &str = "next_due";
    let mut stmt = conn
        .prepare_cached(
            "SELECT MIN(due) FROM ( \
                 SELECT (SELECT due_at FROM conversations INDEXED BY conversations_due \
                         WHERE status = 'scheduled' \
                         ORDER BY due_at LIMIT 1) AS due \
                 UNION ALL \
                 SELECT (SELECT lease_until FROM conversations INDEXED BY conversations_lease \
                         WHERE status = 'running' \
                         AND lease_until IS NOT NULL ORDER BY lease_until LIMIT 1))",
        )
        .ctx(OP)?;
    let due: Option<i64> = stmt.query_row([], |row| row.get(0)).ctx(OP)?;
    opt_timestamp(due, "due time")
}

/// Checks the connection answers.
pub(super) fn ping(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached("SELECT 1")
        .ctx("ping")?
        .query_row([], |row| row.get::<_, i64>(0))
        .ctx("ping")
        .map(|_| ())
}

// ---- clients ----------------------------------------------------------------------------

const CLIENT_COLUMNS: &str = "id, name, key_hash, scopes, disabled, created_at";

fn read_client(row: &Row<'_>) -> rusqlite::Result<(String, String, String, String, bool, i64)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn decode_client(
    (id, name, key_hash, scopes, disabled, created_at): (String, String, String, String, bool, i64),
) -> Result<Client, StoreError> {
    Ok(Client {
        scopes: serde_json::from_str(&scopes).map_err(|e| corrupt("client scopes", e))?,
        created_at: timestamp(created_at, "client created_at")?,
        id,
        name,
        key_hash,
        disabled,
    })
}

/// Inserts a client; `Duplicate` if the id exists.
pub(super) fn create_client(conn: &Connection, client: &Client) -> Result<(), StoreError> {
    const OP: &str = "create_client";
    let scopes = serde_json::to_string(&client.scopes)
        .map_err(|e| StoreError::Backend(format!("{OP}: scopes: {e}")))?;
    let result = conn
        .prepare_cached(
            "INSERT INTO clients (id, name, key_hash, scopes, disabled, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .ctx(OP)?
        .execute(params![
            client.id,
            client.name,
            client.key_hash,
            scopes,
            client.disabled,
            millis(client.created_at)
        ]);
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_constraint(&e) => Err(StoreError::Duplicate),
        Err(e) => Err(e).ctx(OP),
    }
}

/// One client, or `NotFound`.
pub(super) fn get_client(conn: &Connection, id: &str) -> Result<Client, StoreError> {
    const OP: &str = "get_client";
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)
        .ctx(OP)?
        .query_row([id], read_client)
        .optional()
        .ctx(OP)?;
    decode_client(raw.ok_or(StoreError::NotFound)?)
}

/// All clients, by id.
pub(super) fn list_clients(conn: &Connection) -> Result<Vec<Client>, StoreError> {
    const OP: &str = "list_clients";
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id");
    let mut stmt = conn.prepare_cached(&sql).ctx(OP)?;
    let rows = stmt.query_map([], read_client).ctx(OP)?;
    rows.map(|row| decode_client(row.ctx(OP)?)).collect()
}

/// Enables or disables a client; `NotFound` if there is none.
pub(super) fn set_client_disabled(
    conn: &Connection,
    id: &str,
    disabled: bool,
) -> Result<(), StoreError> {
    const OP: &str = "set_client_disabled";
    let changed = conn
        .prepare_cached("UPDATE clients SET disabled = ?2 WHERE id = ?1")
        .ctx(OP)?
        .execute(params![id, disabled])
        .ctx(OP)?;
    if changed == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

// ---- settings ---------------------------------------------------------------------------

/// A setting's value, if set.
pub(super) fn get_setting(conn: &Connection, key: &str) -> Result<Option<Value>, StoreError> {
    const OP: &str = "get_setting";
    let text: Option<String> = conn
        .prepare_cached("SELECT value FROM settings WHERE key = ?1")
        .ctx(OP)?
        .query_row([key], |row| row.get(0))
        .optional()
        .ctx(OP)?;
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("setting", e)))
        .transpose()
}

/// Sets (inserts or replaces) a setting.
pub(super) fn set_setting(
    conn: &Connection,
    key: &str,
    value_json: &str,
    secret: bool,
) -> Result<(), StoreError> {
    const OP: &str = "set_setting";
    conn.prepare_cached(
        "INSERT INTO settings (key, value, secret) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, secret = excluded.secret",
    )
    .ctx(OP)?
    .execute(params![key, value_json, secret])
    .ctx(OP)
    .map(|_| ())
}

// ---- backup -----------------------------------------------------------------------------

/// Runs `f` on a consistent snapshot: in a read transaction of its own, or in the
/// transaction the connection is already in.
fn snapshot<T>(
    conn: &Connection,
    op: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if !conn.is_autocommit() {
        return f();
    }
    let tx = conn.unchecked_transaction().ctx(op)?;
    let result = f()?;
    tx.commit().ctx(op)?;
    Ok(result)
}

/// Everything but secret settings, as one consistent snapshot.
pub(super) fn export(conn: &Connection, now: Timestamp) -> Result<Backup, StoreError> {
    const OP: &str = "export";
    snapshot(conn, OP, || {
        let clients = list_clients(conn)?;
        let mut settings = Map::new();
        {
            let mut stmt = conn
                .prepare_cached("SELECT key, value FROM settings WHERE secret = 0 ORDER BY key")
                .ctx(OP)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .ctx(OP)?;
            for row in rows {
                let (key, text) = row.ctx(OP)?;
                let value = serde_json::from_str(&text).map_err(|e| corrupt("setting", e))?;
                settings.insert(key, value);
            }
        }
        let mut conversations = Vec::new();
        {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    conversation_columns!(),
                    " FROM conversations ORDER BY scheduled_time, id"
                ))
                .ctx(OP)?;
            let rows = stmt.query_map([], RawConversation::read).ctx(OP)?;
            for row in rows {
                conversations.push(row.ctx(OP)?.decode()?);
            }
        }
        Ok(Backup {
            format: BACKUP_FORMAT,
            exported_at: truncate(now),
            clients,
            settings,
            conversations,
        })
    })
}

/// Loads a backup into an empty store (`NotEmpty` otherwise). The caller provides the
/// transaction (a savepoint of the writer's group transaction).
pub(super) fn import(conn: &Connection, backup: &Backup) -> Result<(), StoreError> {
    const OP: &str = "import";
    if backup.format != BACKUP_FORMAT {
        return Err(StoreError::Backend(format!(
            "{OP}: backup format {} is not supported (this build reads format {BACKUP_FORMAT})",
            backup.format
        )));
    }
    let occupied: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM conversations) OR EXISTS (SELECT 1 FROM clients) \
             OR EXISTS (SELECT 1 FROM settings)",
            [],
            |row| row.get(0),
        )
        .ctx(OP)?;
    if occupied {
        return Err(StoreError::NotEmpty);
    }
    for client in &backup.clients {
        create_client(conn, client).map_err(|e| match e {
            StoreError::Duplicate => {
                StoreError::Backend(format!("{OP}: client {} appears twice", client.id))
            }
            other => other,
        })?;
    }
    for (key, value) in &backup.settings {
        let json = serde_json::to_string(value)
            .map_err(|e| StoreError::Backend(format!("{OP}: setting {key}: {e}")))?;
        set_setting(conn, key, &json, false)?;
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO conversations (id, status, topic, participants, scheduled_time, \
             timezone, duration_minutes, metadata, idempotency_key, fingerprint, owner, \
             attempts, started_at, completed_at, last_error, lease_owner, lease_until, \
             due_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?20, ?18, ?19)",
        )
        .ctx(OP)?;
    for c in &backup.conversations {
        let context = |what: &str| format!("{OP}: conversation {}: {what}", c.id);
        let participants = serde_json::to_string(&c.participants)
            .map_err(|e| StoreError::Backend(context(&e.to_string())))?;
        let metadata = serde_json::to_string(&c.metadata)
            .map_err(|e| StoreError::Backend(context(&e.to_string())))?;
        insert
            .execute(params![
                c.id,
                c.status.as_str(),
                c.topic,
                participants,
                millis(c.scheduled_time),
                c.timezone,
                c.duration_minutes,
                metadata,
                c.idempotency_key,
                c.fingerprint,
                c.owner,
                c.attempts,
                c.started_at.map(millis),
                c.completed_at.map(millis),
                c.last_error,
                c.lease_owner,
                c.lease_until.map(millis),
                millis(c.created_at),
                millis(c.updated_at),
                millis(c.next_attempt_at.unwrap_or(c.scheduled_time)),
            ])
            .map_err(|e| StoreError::Backend(context(&e.to_string())))?;
    }
    Ok(())
}
