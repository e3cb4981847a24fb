//! Opening SQLite connections (pragmas) and the schema migrations applied at open.
//!
//! The schema is versioned by the `schema_version` table (one row per applied migration).
//! [`MIGRATIONS`] is append-only: migration `n` (1-based) is `MIGRATIONS[n - 1]`, applied in
//! one transaction with the bump of the version, so a crash mid-migration leaves the previous
//! version intact. A database whose version is newer than this build knows is refused.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::ops::Ctx;
use crate::store::StoreError;

/// How long a connection waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements each connection keeps.
const STATEMENT_CACHE: usize = 64;

/// The migrations, oldest first. Append only; never edit one that has shipped.
///
/// Times are integer milliseconds since the Unix epoch (UTC); JSON values are text.
/// `due_at` is when a `scheduled` conversation becomes due for dispatch: its
/// `scheduled_time`, or the retry time after a failed attempt (the conversation keeps its
/// `scheduled_time` for listing).
const MIGRATIONS: &[&str] = &[
    // 1: conversations, clients, settings.
    "CREATE TABLE conversations (
        id               TEXT PRIMARY KEY NOT NULL,
        status           TEXT NOT NULL CHECK (status IN
                             ('scheduled', 'running', 'completed', 'failed', 'cancelled')),
        topic            TEXT NOT NULL,
        participants     TEXT NOT NULL,
        scheduled_time   INTEGER NOT NULL,
        timezone         TEXT,
        duration_minutes INTEGER NOT NULL,
        metadata         TEXT NOT NULL,
        idempotency_key  TEXT,
        fingerprint      TEXT NOT NULL,
        owner            TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        started_at       INTEGER,
        completed_at     INTEGER,
        last_error       TEXT,
        lease_owner      TEXT,
        lease_until      INTEGER,
        due_at           INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX conversations_idempotency_key ON conversations (idempotency_key);
    CREATE INDEX conversations_by_time ON conversations (scheduled_time, id);
    CREATE INDEX conversations_by_status_time ON conversations (status, scheduled_time, id);
    CREATE INDEX conversations_due ON conversations (due_at, id) WHERE status = 'scheduled';
    CREATE INDEX conversations_lease ON conversations (lease_until, id) WHERE status = 'running';

    CREATE TABLE clients (
        id         TEXT PRIMARY KEY NOT NULL,
        name       TEXT NOT NULL,
        key_hash   TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        disabled   INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );

    CREATE TABLE settings (
        key    TEXT PRIMARY KEY NOT NULL,
        value  TEXT NOT NULL,
        secret INTEGER NOT NULL DEFAULT 0
    );",
];

/// The schema version this build creates and understands.
pub(super) fn latest_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Opens (creating it if needed) the database file for the writer: WAL journal,
/// `synchronous=NORMAL`, foreign keys, busy timeout; then applies pending migrations.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let location = path.display().to_string();
    let op = format!("open {location}");
    let mut conn = Connection::open(path).ctx(&op)?;
    configure(&conn, &op)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .ctx(&op)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path = %location,
            journal_mode = %mode,
            "SQLite could not switch to WAL; readers will wait for the writer"
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL").ctx(&op)?;
    // Savepoint sub-journals in memory instead of a temp file written on every command.
    conn.pragma_update(None, "temp_store", "MEMORY").ctx(&op)?;
    // Checkpoint every ~16 MiB of WAL instead of ~4 MiB: fewer stalls of the writer thread.
    conn.pragma_update(None, "wal_autocheckpoint", 4000)
        .ctx(&op)?;
    migrate(&mut conn, &location)?;
    Ok(conn)
}

/// Opens a reader connection on an existing database file (after [`open_writer`]).
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let op = format!("open reader on {}", path.display());
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).ctx(&op)?;
    configure(&conn, &op)?;
    conn.pragma_update(None, "query_only", true).ctx(&op)?;
    Ok(conn)
}

/// Opens a private in-memory database (one connection) with the schema applied.
pub(super) fn open_memory() -> Result<Connection, StoreError> {
    let op = "open in-memory database";
    let mut conn = Connection::open_in_memory().ctx(op)?;
    configure(&conn, op)?;
    migrate(&mut conn, ":memory:")?;
    Ok(conn)
}

/// Settings every connection gets.
fn configure(conn: &Connection, op: &str) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).ctx(op)?;
    conn.pragma_update(None, "foreign_keys", true).ctx(op)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Brings the schema to [`latest_version`] in one transaction; refuses a newer schema.
fn migrate(conn: &mut Connection, location: &str) -> Result<(), StoreError> {
    let op = format!("migrate {location}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx(&op)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY NOT NULL)",
    )
    .ctx(&op)?;
    let current: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .ctx(&op)?;
    let known = latest_version();
    if current > known {
        return Err(StoreError::Backend(format!(
            "{location}: the database has schema version {current}, newer than this build of \
             scheduler-server understands ({known}); run a newer scheduler-server or restore \
             a backup"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
        if version <= current {
            continue;
        }
        tx.execute_batch(sql)
            .ctx(&format!("{op}: migration {version}"))?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [version],
        )
        .ctx(&op)?;
    }
    tx.commit().ctx(&op)
}
