//! Task records, as DescribeInstanceOpsRecords reports them.
//!
//! One record per capture; for coredump, one arming record per enable plus
//! one per crash. A record's artifact (pcap, core) is served through a
//! presigned URL until the record's ExpireTime.

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc};

use serde::Serialize;

use crate::{
    api::ApiError,
    store::{now_ms, Store},
};

/// How long a record (and its download URL) lives: ECI's 12 hours.
pub const DEFAULT_TTL_MS: i64 = 12 * 3600 * 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum OpsStatus {
    /// Armed or running.
    Ready,
    /// The artifact was produced.
    Success,
    Failed,
    /// Disabled before producing anything.
    Closed,
    /// Armed, never triggered before ExpireTime.
    Expired,
}

impl fmt::Display for OpsStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl FromStr for OpsStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "Ready" => Self::Ready,
            "Success" => Self::Success,
            "Failed" => Self::Failed,
            "Closed" => Self::Closed,
            "Expired" => Self::Expired,
            other => return Err(format!("unknown status {other}")),
        })
    }
}

/// A stored record.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub id: String,
    pub group_id: String,
    pub ops_type: String,
    pub status: OpsStatus,
    pub create_ms: i64,
    pub expire_ms: i64,
    /// The produced file, when Success.
    pub artifact: Option<PathBuf>,
    /// Task-specific facts (capture summary, crash metadata, failure reason).
    pub detail: serde_json::Value,
}

pub struct Records {
    store: Arc<Store>,
    ttl_ms: i64,
}

fn internal(e: rusqlite::Error) -> ApiError {
    ApiError::InternalError(e.to_string())
}

impl Records {
    pub fn new(store: Arc<Store>) -> Self {
        Self::with_ttl(store, DEFAULT_TTL_MS)
    }

    /// Records that expire `ttl_ms` after creation.
    pub fn with_ttl(store: Arc<Store>, ttl_ms: i64) -> Self {
        Self { store, ttl_ms }
    }

    /// How long a record lives.
    pub fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    /// Create a record in state `status`, returning it.
    pub fn create(
        &self,
        group_id: &str,
        ops_type: &str,
        status: OpsStatus,
        detail: serde_json::Value,
    ) -> Result<Record, ApiError> {
        let now = now_ms();
        let record = Record {
            id: uuid::Uuid::new_v4().to_string(),
            group_id: group_id.to_owned(),
            ops_type: ops_type.to_owned(),
            status,
            create_ms: now,
            expire_ms: now + self.ttl_ms,
            artifact: None,
            detail,
        };
        self.insert(&record)?;
        Ok(record)
    }

    /// Insert a complete record (e.g. a crash found on disk), ignoring one
    /// whose id is already stored.
    pub fn insert(&self, r: &Record) -> Result<bool, ApiError> {
        self.write(r, "ON CONFLICT(id) DO NOTHING").map(|n| n > 0)
    }

    /// Insert a record, or bring a stored one with the same id up to date
    /// (a crash record completed later by the exit monitor).
    pub fn upsert(&self, r: &Record) -> Result<(), ApiError> {
        self.write(
            r,
            "ON CONFLICT(id) DO UPDATE SET status = excluded.status,
                 artifact = excluded.artifact, detail = excluded.detail
             WHERE records.detail != excluded.detail OR records.status != excluded.status",
        )
        .map(drop)
    }

    fn write(&self, r: &Record, on_conflict: &str) -> Result<usize, ApiError> {
        self.store
            .conn()
            .execute(
                &format!(
                    "INSERT INTO records (id, group_id, ops_type, status, create_ms, expire_ms, artifact, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) {on_conflict}"
                ),
                rusqlite::params![
                    r.id,
                    r.group_id,
                    r.ops_type,
                    r.status.to_string(),
                    r.create_ms,
                    r.expire_ms,
                    r.artifact.as_ref().map(|p| p.to_string_lossy().into_owned()),
                    r.detail.to_string()
                ],
            )
            .map_err(internal)
    }

    /// Forget a record (one whose request was refused after all).
    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        self.store
            .conn()
            .execute("DELETE FROM records WHERE id = ?1", [id])
            .map_err(internal)?;
        Ok(())
    }

    /// Set a record's final state.
    pub fn finish(
        &self,
        id: &str,
        status: OpsStatus,
        artifact: Option<&std::path::Path>,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.store
            .conn()
            .execute(
                "UPDATE records SET status = ?2, artifact = ?3, detail = ?4 WHERE id = ?1",
                rusqlite::params![
                    id,
                    status.to_string(),
                    artifact.map(|p| p.to_string_lossy().into_owned()),
                    detail.to_string()
                ],
            )
            .map_err(internal)?;
        Ok(())
    }

    fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
        let status: String = row.get(3)?;
        let detail: String = row.get(7)?;
        Ok(Record {
            id: row.get(0)?,
            group_id: row.get(1)?,
            ops_type: row.get(2)?,
            status: status.parse().unwrap_or(OpsStatus::Failed),
            create_ms: row.get(4)?,
            expire_ms: row.get(5)?,
            artifact: row.get::<_, Option<String>>(6)?.map(PathBuf::from),
            detail: serde_json::from_str(&detail).unwrap_or_default(),
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>, ApiError> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare_cached("SELECT id, group_id, ops_type, status, create_ms, expire_ms, artifact, detail FROM records WHERE id = ?1")
            .map_err(internal)?;
        let mut rows = stmt.query_map([id], Self::row).map_err(internal)?;
        rows.next().transpose().map_err(internal)
    }

    /// Records of a group (optionally one OpsType), oldest first.
    pub fn list(
        &self,
        group_id: Option<&str>,
        ops_type: Option<&str>,
    ) -> Result<Vec<Record>, ApiError> {
        let conn = self.store.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, group_id, ops_type, status, create_ms, expire_ms, artifact, detail FROM records
                 WHERE (?1 IS NULL OR group_id = ?1) AND (?2 IS NULL OR ops_type = ?2)
                 ORDER BY create_ms, id",
            )
            .map_err(internal)?;
        let rows = stmt
            .query_map(rusqlite::params![group_id, ops_type], Self::row)
            .map_err(internal)?;
        rows.collect::<Result<_, _>>().map_err(internal)
    }

    /// Records still Ready whose ExpireTime has passed.
    pub fn due_for_expiry(&self, now: i64) -> Result<Vec<Record>, ApiError> {
        Ok(self
            .list(None, None)?
            .into_iter()
            .filter(|r| r.status == OpsStatus::Ready && r.expire_ms <= now)
            .collect())
    }

    /// At start: captures that were running when the daemon stopped
    /// uncleanly cannot be resumed. Mark them Failed, saying why.
    pub fn fail_interrupted(&self, ops_type: &str, reason: &str) -> Result<usize, ApiError> {
        let detail = serde_json::json!({ "Reason": reason }).to_string();
        self.store
            .conn()
            .execute(
                "UPDATE records SET status = 'Failed', detail = ?2 WHERE status = 'Ready' AND ops_type = ?1",
                rusqlite::params![ops_type, detail],
            )
            .map_err(internal)
    }
}

/// ISO 8601 UTC with seconds, as the ECI API writes times.
pub fn iso8601(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_restart_recovery() {
        let records = Records::new(Arc::new(Store::memory().unwrap()));
        let a = records
            .create("g1", "tcpdump", OpsStatus::Ready, serde_json::json!({}))
            .unwrap();
        let b = records
            .create("g2", "coredump", OpsStatus::Ready, serde_json::json!({}))
            .unwrap();
        assert_eq!(a.expire_ms - a.create_ms, DEFAULT_TTL_MS);
        records
            .finish(
                &b.id,
                OpsStatus::Success,
                Some(std::path::Path::new("/x")),
                serde_json::json!({"k": 1}),
            )
            .unwrap();
        let b2 = records.get(&b.id).unwrap().unwrap();
        assert_eq!(b2.status, OpsStatus::Success);
        assert_eq!(b2.detail["k"], 1);
        assert_eq!(records.list(Some("g1"), None).unwrap().len(), 1);
        assert_eq!(records.list(None, Some("coredump")).unwrap().len(), 1);
        assert_eq!(
            records
                .fail_interrupted("tcpdump", "daemon restarted")
                .unwrap(),
            1
        );
        let a2 = records.get(&a.id).unwrap().unwrap();
        assert_eq!(a2.status, OpsStatus::Failed);
        assert_eq!(a2.detail["Reason"], "daemon restarted");
        assert!(records
            .due_for_expiry(a.create_ms + DEFAULT_TTL_MS + 1)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn times_are_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
