//! The single writer: one connection on a dedicated OS thread, fed by a channel, with group
//! commit.
//!
//! Callers submit [`Job`]s (an operation plus a oneshot for its reply). The thread takes the
//! first queued job, drains whatever else is queued (up to [`MAX_BATCH`]), and runs them all
//! in ONE `BEGIN IMMEDIATE … COMMIT` transaction, each inside its own `SAVEPOINT`: a job that
//! fails (say, an invalid transition) is rolled back to its savepoint without touching the
//! others. Replies are sent only after the commit, so a caller never sees a result that is
//! not durable (to the `synchronous=NORMAL` WAL guarantee). Under load, many callers share
//! one commit; when idle, a lone job commits at once (no artificial delay).
//!
//! If the group transaction itself fails (the commit, or SQLite rolls the whole transaction
//! back after an I/O error), each job of the batch is run again in a transaction of its own,
//! so one poisoned job cannot fail its neighbours. Operations are therefore `Fn`: they may
//! run twice, and only the committed run counts.
//!
//! Dropping the [`Writer`] closes the channel; the thread finishes the jobs already queued,
//! closes its connection and exits, and the drop waits for it.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// Most jobs in one group transaction (bounds the latency of the first job in a batch).
const MAX_BATCH: usize = 1024;

/// A unit of work for the writer thread.
pub(super) trait Job: Send {
    /// Runs the operation on `conn` (inside a transaction); true if it succeeded and its
    /// changes should be kept.
    fn run(&mut self, conn: &Connection) -> bool;

    /// Sends the reply: the operation's result if its transaction committed (`Ok`), or the
    /// commit failure.
    fn reply(self: Box<Self>, committed: Result<(), String>);
}

/// A [`Job`] running an operation that returns `T`.
struct OpJob<T, F> {
    op: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for OpJob<T, F>
where
    T: Send,
    F: Fn(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.op)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn reply(self: Box<Self>, committed: Result<(), String>) {
        let result = match (self.result, committed) {
            // A refused operation changed nothing: its own error stands either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(message)) => Err(StoreError::Backend(message)),
            (None, Ok(())) => Err(StoreError::Backend(
                "writer: the operation was not run".to_owned(),
            )),
        };
        // The caller may have stopped waiting; the outcome is in the database regardless.
        let _ = self.reply.send(result);
    }
}

/// Wraps an operation as a job; the receiver gets its result after the commit.
pub(super) fn job<T, F>(op: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    let (reply, receiver) = oneshot::channel();
    let job = OpJob {
        op,
        result: None,
        reply,
    };
    (Box::new(job), receiver)
}

/// Handle of the writer thread.
pub(super) struct Writer {
    sender: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Moves `conn` to a new writer thread.
    pub(super) fn spawn(conn: Connection, name: &str) -> Result<Self, StoreError> {
        let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(&conn, &receiver))
            .map_err(|e| StoreError::Backend(format!("start the store writer thread: {e}")))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues a job (never blocks).
    pub(super) fn submit(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        let stopped = || StoreError::Backend("the store writer thread has stopped".to_owned());
        self.sender
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain the queue and exit.
        drop(self.sender.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

/// The writer thread's loop: batch, run, commit, reply; until the channel closes.
fn run(conn: &Connection, receiver: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(conn, batch);
    }
}

/// Runs a batch as one group transaction and replies; falls back to one transaction per job
/// if the group transaction fails.
fn commit_batch(conn: &Connection, mut batch: Vec<Box<dyn Job>>) {
    if batch.len() == 1 {
        // One job needs no savepoint: its own transaction is the same thing, cheaper.
        for job in batch {
            run_alone(conn, job);
        }
        return;
    }
    match run_group(conn, &mut batch) {
        Ok(()) => {
            for job in batch {
                job.reply(Ok(()));
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            if batch.len() == 1 {
                for job in batch {
                    job.reply(Err(format!("write transaction: {e}")));
                }
            } else {
                tracing::warn!(
                    error = %e,
                    jobs = batch.len(),
                    "group commit failed; running the batch one transaction per job"
                );
                for job in batch {
                    run_alone(conn, job);
                }
            }
        }
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs every job in one transaction, each in its own savepoint.
fn run_group(conn: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        exec(conn, "SAVEPOINT job")?;
        let ok = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (I/O error, disk full, ...).
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back by SQLite".to_owned()),
            ));
        }
        if !ok {
            exec(conn, "ROLLBACK TO job")?;
        }
        exec(conn, "RELEASE job")?;
    }
    exec(conn, "COMMIT")
}

/// Runs one job in a transaction of its own and replies.
fn run_alone(conn: &Connection, mut job: Box<dyn Job>) {
    let outcome = (|| -> rusqlite::Result<()> {
        exec(conn, "BEGIN IMMEDIATE")?;
        if job.run(conn) {
            exec(conn, "COMMIT")
        } else {
            exec(conn, "ROLLBACK")
        }
    })();
    if let Err(e) = outcome {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        job.reply(Err(format!("write transaction: {e}")));
    } else {
        job.reply(Ok(()));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v TEXT PRIMARY KEY NOT NULL)")
            .unwrap();
        conn
    }

    fn insert(v: &'static str) -> impl Fn(&Connection) -> Result<(), StoreError> + Send {
        move |c: &Connection| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map(|_| ())
                .map_err(|e| StoreError::Backend(e.to_string()))
        }
    }

    fn values(conn: &Connection) -> Vec<String> {
        let mut stmt = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn a_failing_job_is_rolled_back_to_its_savepoint_only() {
        let conn = conn();
        let (a, ra) = job(insert("a"));
        // Changes something, then fails: its change must not survive.
        let (bad, rbad) = job(|c: &Connection| -> Result<(), StoreError> {
            insert("b")(c)?;
            Err(StoreError::NotFound)
        });
        let (dup, rdup) = job(insert("a"));
        let (c, rc) = job(insert("c"));
        commit_batch(&conn, vec![a, bad, dup, c]);
        assert!(ra.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            rbad.blocking_recv().unwrap(),
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            rdup.blocking_recv().unwrap(),
            Err(StoreError::Backend(_))
        ));
        assert!(rc.blocking_recv().unwrap().is_ok());
        assert_eq!(values(&conn), ["a", "c"]);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn a_broken_group_transaction_falls_back_to_one_transaction_per_job() {
        let conn = conn();
        let (a, ra) = job(insert("a"));
        // Ends the group transaction under the writer's feet, as SQLite does after an I/O
        // error; it also breaks its own transaction when run alone.
        let (poison, rpoison) = job(|c: &Connection| -> Result<(), StoreError> {
            c.execute_batch("ROLLBACK")
                .map_err(|e| StoreError::Backend(e.to_string()))
        });
        let (b, rb) = job(insert("b"));
        commit_batch(&conn, vec![a, poison, b]);
        assert!(ra.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            rpoison.blocking_recv().unwrap(),
            Err(StoreError::Backend(_))
        ));
        assert!(rb.blocking_recv().unwrap().is_ok());
        assert_eq!(values(&conn), ["a", "b"]);
        assert!(conn.is_autocommit());
    }

    #[test]
    fn dropping_the_writer_finishes_queued_jobs_and_joins() {
        let writer = Writer::spawn(conn(), "test-writer").unwrap();
        let mut replies = Vec::new();
        for v in ["x", "y", "z"] {
            let (j, r) = job(insert(v));
            writer.submit(j).unwrap();
            replies.push(r);
        }
        drop(writer);
        for r in replies {
            assert!(r.blocking_recv().unwrap().is_ok());
        }
    }
}
