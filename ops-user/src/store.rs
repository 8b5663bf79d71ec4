//! The daemon's database: one SQLite file in the data directory holding the
//! container-group registry and the task records, so both survive restarts.

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
};

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
#[error("database: {0}")]
pub struct StoreError(#[from] pub rusqlite::Error);

pub struct Store {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS instances (
    id         TEXT PRIMARY KEY,
    netns      TEXT,
    cgroup     TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id         TEXT PRIMARY KEY,
    group_id   TEXT NOT NULL,
    ops_type   TEXT NOT NULL,
    status     TEXT NOT NULL,
    create_ms  INTEGER NOT NULL,
    expire_ms  INTEGER NOT NULL,
    artifact   TEXT,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS records_by_group ON records (group_id, ops_type, create_ms);
";

impl Store {
    /// Open (or create) `dir/ops.db`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(dir.join("ops.db"))?;
        // WAL: readers (Describe) never wait for the writer (a capture
        // finishing), and a crash loses at most the last transaction.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store, for unit tests.
    pub fn memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
