//! A small pool of reader connections on the database file.
//!
//! WAL lets readers run while the writer commits, each on its own snapshot. Reads run on
//! tokio's blocking threads (`spawn_blocking`), each borrowing an idle connection or opening
//! a new one; at most [`MAX_IDLE`] are kept for reuse.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use rusqlite::Connection;

use super::schema;
use crate::store::StoreError;

/// Idle reader connections kept open.
const MAX_IDLE: usize = 8;

/// The reader connections of one database file.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// A pool for the database at `path` (which must exist).
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs `op` on a reader connection (blocking; call from a blocking thread).
    pub(super) fn run<T>(
        &self,
        op: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match reused {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = op(&conn);
        // A connection left inside a transaction (an operation bailed out early) is dropped,
        // which rolls it back, rather than reused.
        if conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        result
    }
}
