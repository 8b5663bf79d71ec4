//! The actions: validation in the documented order, then the engines.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use super::{presign::Presigner, protocol::RpcRequest, ApiError};
use crate::{
    instances::{Instance, Registry},
    records::{iso8601, OpsStatus, Record, Records},
    tasks::Tasks,
};

/// Who is calling: the local socket (root, trusted by credentials) or the
/// network (signed by an AccessKey).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    Socket,
    Network,
}

/// Everything the actions need.
pub struct Api {
    pub region: String,
    pub registry: Registry,
    pub records: Arc<Records>,
    pub presigner: Presigner,
    pub tasks: Tasks,
    pub min_interval: Duration,
    /// Last successful setting per (group, OpsType).
    last_set: Mutex<HashMap<(String, String), Instant>>,
}

pub const OPS_TYPES: [&str; 2] = ["coredump", "tcpdump"];

impl Api {
    pub fn new(
        region: String,
        registry: Registry,
        records: Arc<Records>,
        presigner: Presigner,
        tasks: Tasks,
        min_interval: Duration,
    ) -> Self {
        Self {
            region,
            registry,
            records,
            presigner,
            tasks,
            min_interval,
            last_set: Mutex::default(),
        }
    }

    /// Run one action. `base_url` is where download URLs point.
    pub fn dispatch(
        &self,
        req: &RpcRequest,
        caller: Caller,
        base_url: &str,
    ) -> Result<Value, ApiError> {
        // Local tools need not know the node's region.
        let mut local;
        let req = if caller == Caller::Socket && req.get("RegionId").is_none() {
            local = req.clone();
            local.params.push(("RegionId".into(), self.region.clone()));
            &local
        } else {
            req
        };
        match (req.action.as_str(), caller) {
            ("CreateInstanceOpsTask", _) => {
                self.create(req).map(|result| json!({ "Result": result }))
            }
            ("DescribeInstanceOpsRecords", _) => self.describe(req, base_url),
            // Node administration: only over the root-only socket.
            ("AddInstance", Caller::Socket) => {
                let id = req.required("ContainerGroupId")?;
                self.registry.local.add(
                    id,
                    req.get("Netns").filter(|s| !s.is_empty()),
                    req.get("Cgroup").filter(|s| !s.is_empty()),
                )?;
                Ok(json!({ "Result": format!("container group {id} registered") }))
            }
            ("RemoveInstance", Caller::Socket) => {
                let id = req.required("ContainerGroupId")?;
                if !self.registry.local.remove(id)? {
                    return Err(ApiError::InvalidInstanceIdNotFound);
                }
                Ok(json!({ "Result": format!("container group {id} removed") }))
            }
            ("ListRecords", Caller::Socket) => {
                let group = req.get("ContainerGroupId").filter(|s| !s.is_empty());
                let ops_type = req.get("OpsType").filter(|s| !s.is_empty());
                self.tasks.maintain(&self.records, group)?;
                let records: Vec<Value> = self
                    .records
                    .list(group, ops_type)?
                    .iter()
                    .map(|r| self.local_view(r, base_url))
                    .collect();
                Ok(json!({ "Records": records }))
            }
            ("ListInstances", Caller::Socket) => Ok(json!({ "Instances": self.registry.list()? })),
            ("DescribeRecord", Caller::Socket) => {
                let id = req.required("RecordId")?;
                let record = self
                    .records
                    .get(id)?
                    .ok_or_else(|| ApiError::InvalidParameter(format!("no record {id}")))?;
                Ok(
                    json!({ "Record": self.local_view(&record, base_url), "Progress": self.tasks.progress(&record) }),
                )
            }
            _ => Err(ApiError::InvalidActionNotFound),
        }
    }

    fn create(&self, req: &RpcRequest) -> Result<String, ApiError> {
        let region = req.required("RegionId")?;
        let group = req.required("ContainerGroupId")?;
        let ops_type = req.required("OpsType")?;
        let value = req.required("OpsValue")?;
        if !OPS_TYPES.contains(&ops_type) {
            return Err(ApiError::OpsTypeNotSupport(format!(
                "OpsType `{ops_type}` is not supported; use coredump or tcpdump"
            )));
        }
        if region != self.region {
            let msg = format!(
                "RegionId `{region}` is not served by this node (it serves {})",
                self.region
            );
            return Err(if ops_type == "coredump" {
                ApiError::CoredumpRegionNotSupport(msg)
            } else {
                ApiError::OpsRegionNotSupport(msg)
            });
        }
        let instance = self.registry.find(group)?;
        // Parse before the interval check: a rejected value is not a setting.
        let task = self.tasks.parse(ops_type, value)?;
        self.check_interval(group, ops_type)?;
        self.tasks.check_instance(ops_type, &instance)?;
        let result = self.tasks.apply(&instance, task, &self.records)?;
        self.mark_set(group, ops_type);
        Ok(result)
    }

    fn key(group: &str, ops_type: &str) -> (String, String) {
        (group.to_owned(), ops_type.to_owned())
    }

    fn check_interval(&self, group: &str, ops_type: &str) -> Result<(), ApiError> {
        let last = self.last_set.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = last.get(&Self::key(group, ops_type)) {
            if at.elapsed() < self.min_interval {
                return Err(if ops_type == "coredump" {
                    ApiError::CoredumpRefreshIntervalTooShort
                } else {
                    ApiError::OpsIntervalTooShort
                });
            }
        }
        Ok(())
    }

    fn mark_set(&self, group: &str, ops_type: &str) {
        self.last_set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Self::key(group, ops_type), Instant::now());
    }

    fn describe(&self, req: &RpcRequest, base_url: &str) -> Result<Value, ApiError> {
        let region = req.required("RegionId")?;
        let group = req.required("ContainerGroupId")?;
        let ops_type = req.get("OpsType").filter(|s| !s.is_empty());
        if let Some(t) = ops_type {
            if !OPS_TYPES.contains(&t) {
                return Err(ApiError::OpsTypeNotSupport(format!(
                    "OpsType `{t}` is not supported; use coredump or tcpdump"
                )));
            }
        }
        if region != self.region {
            return Err(ApiError::OpsRegionNotSupport(format!(
                "RegionId `{region}` is not served by this node (it serves {})",
                self.region
            )));
        }
        let _: Instance = self.registry.find(group)?;
        self.tasks.maintain(&self.records, Some(group))?;
        let records: Vec<Value> = self
            .records
            .list(Some(group), ops_type)?
            .iter()
            .map(|r| self.api_view(r, base_url))
            .collect();
        Ok(json!({ "Records": records }))
    }

    /// A record as DescribeInstanceOpsRecords shows it.
    fn api_view(&self, r: &Record, base_url: &str) -> Value {
        let mut v = json!({
            "CreateTime": iso8601(r.create_ms),
            "ExpireTime": iso8601(r.expire_ms),
            "OpsType": r.ops_type,
            "OpsStatus": r.status.to_string(),
        });
        if r.status == OpsStatus::Success && r.artifact.is_some() {
            v["ResultType"] = json!("Url");
            v["ResultContent"] = json!(self.presigner.url(base_url, &r.id, r.expire_ms / 1000));
        }
        v
    }

    /// The fuller view the CLI shows: id, group, detail.
    pub fn local_view(&self, r: &Record, base_url: &str) -> Value {
        let mut v = self.api_view(r, base_url);
        v["RecordId"] = json!(r.id);
        v["ContainerGroupId"] = json!(r.group_id);
        v["Detail"] = r.detail.clone();
        v
    }
}
