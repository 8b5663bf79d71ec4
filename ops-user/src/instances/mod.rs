//! Container groups on this node: what a task needs to find one (its network
//! namespace and its cgroup).
//!
//! Groups come from sources. The local registry (`ops instance add`) is the
//! first; a CRI runtime such as containerd can be another, implementing
//! [`InstanceSource`], without the tasks knowing the difference.

use std::{path::PathBuf, sync::Arc};

use serde::Serialize;

use crate::{
    api::ApiError,
    store::{now_ms, Store, StoreError},
};

/// One container group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub id: String,
    /// `ip netns` name or path of the group's network namespace.
    pub netns: Option<String>,
    /// cgroup v2 path of the group.
    pub cgroup: Option<PathBuf>,
    /// Which source knows it.
    pub source: String,
}

/// Somewhere container groups are discovered.
pub trait InstanceSource: Send + Sync {
    fn name(&self) -> &'static str;
    fn get(&self, id: &str) -> Result<Option<Instance>, StoreError>;
    fn list(&self) -> Result<Vec<Instance>, StoreError>;
}

/// `[A-Za-z0-9-]{1,64}`: an id ends up in paths, so nothing else passes.
pub fn validate_id(id: &str) -> Result<(), ApiError> {
    let ok =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidParameter(format!(
            "ContainerGroupId `{}` is invalid: use 1 to 64 letters, digits or '-'",
            id.escape_debug()
        )))
    }
}

/// Groups registered by hand (`ops instance add`), kept in the database.
pub struct LocalSource {
    store: Arc<Store>,
}

impl LocalSource {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    pub fn add(&self, id: &str, netns: Option<&str>, cgroup: Option<&str>) -> Result<(), ApiError> {
        validate_id(id)?;
        if netns.is_none() && cgroup.is_none() {
            return Err(ApiError::InvalidParameter(
                "a container group needs a network namespace (--netns), a cgroup (--cgroup), or both".into(),
            ));
        }
        if let Some(cgroup) = cgroup {
            if cgroup.split('/').any(|c| c == "..") {
                return Err(ApiError::InvalidParameter(format!(
                    "cgroup path `{cgroup}` must not contain `..`"
                )));
            }
        }
        self.store
            .conn()
            .execute(
                "INSERT INTO instances (id, netns, cgroup, created_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET netns = excluded.netns, cgroup = excluded.cgroup",
                rusqlite::params![id, netns, cgroup, now_ms()],
            )
            .map_err(|e| ApiError::InternalError(e.to_string()))?;
        Ok(())
    }

    /// Remove a group; false if it was not registered.
    pub fn remove(&self, id: &str) -> Result<bool, ApiError> {
        validate_id(id)?;
        let n = self
            .store
            .conn()
            .execute("DELETE FROM instances WHERE id = ?1", [id])
            .map_err(|e| ApiError::InternalError(e.to_string()))?;
        Ok(n > 0)
    }

    fn row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
        Ok(Instance {
            id: row.get(0)?,
            netns: row.get(1)?,
            cgroup: row.get::<_, Option<String>>(2)?.map(PathBuf::from),
            source: "local".into(),
        })
    }
}

impl InstanceSource for LocalSource {
    fn name(&self) -> &'static str {
        "local"
    }

    fn get(&self, id: &str) -> Result<Option<Instance>, StoreError> {
        let conn = self.store.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, netns, cgroup FROM instances WHERE id = ?1")?;
        let mut rows = stmt.query_map([id], Self::row)?;
        Ok(rows.next().transpose()?)
    }

    fn list(&self) -> Result<Vec<Instance>, StoreError> {
        let conn = self.store.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, netns, cgroup FROM instances ORDER BY id")?;
        let rows = stmt.query_map([], Self::row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// All sources, asked in order.
pub struct Registry {
    pub local: Arc<LocalSource>,
    sources: Vec<Arc<dyn InstanceSource>>,
}

impl Registry {
    pub fn new(local: Arc<LocalSource>) -> Self {
        Self {
            sources: vec![local.clone() as Arc<dyn InstanceSource>],
            local,
        }
    }

    /// Add another source (e.g. a CRI runtime), asked after the earlier ones.
    pub fn with_source(mut self, source: Arc<dyn InstanceSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// The group `id`, or `InvalidInstanceId.NotFound`.
    pub fn find(&self, id: &str) -> Result<Instance, ApiError> {
        if validate_id(id).is_err() {
            return Err(ApiError::InvalidInstanceIdNotFound);
        }
        for source in &self.sources {
            if let Some(found) = source
                .get(id)
                .map_err(|e| ApiError::InternalError(e.to_string()))?
            {
                return Ok(found);
            }
        }
        Err(ApiError::InvalidInstanceIdNotFound)
    }

    pub fn list(&self) -> Result<Vec<Instance>, ApiError> {
        let mut all = Vec::new();
        for source in &self.sources {
            all.extend(
                source
                    .list()
                    .map_err(|e| ApiError::InternalError(e.to_string()))?,
            );
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        for good in ["eci-bp1dvysdafbh00t7", "a", &"x".repeat(64)] {
            validate_id(good).unwrap();
        }
        for bad in ["", "../x", "a/b", "a b", "ä", &"x".repeat(65), "a.b"] {
            assert_eq!(
                validate_id(bad).unwrap_err().code(),
                "InvalidParameter",
                "{bad}"
            );
        }
    }

    #[test]
    fn local_registry_round_trips() {
        let store = Arc::new(Store::memory().unwrap());
        let local = Arc::new(LocalSource::new(store));
        let reg = Registry::new(local.clone());
        assert_eq!(
            reg.find("g1").unwrap_err(),
            ApiError::InvalidInstanceIdNotFound
        );
        local.add("g1", Some("ns1"), None).unwrap();
        local.add("g2", None, Some("/opst/g2")).unwrap();
        assert!(local.add("g3", None, None).is_err());
        assert!(local.add("g4", None, Some("../../etc")).is_err());
        assert_eq!(reg.find("g1").unwrap().netns.as_deref(), Some("ns1"));
        assert_eq!(reg.list().unwrap().len(), 2);
        assert!(local.remove("g1").unwrap());
        assert!(!local.remove("g1").unwrap());
        assert_eq!(
            reg.find("../x").unwrap_err(),
            ApiError::InvalidInstanceIdNotFound
        );
    }
}
