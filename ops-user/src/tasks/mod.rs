//! The O&M tasks: each engine is plain synchronous code that the API calls
//! through [`Tasks`].

pub mod coredump;
pub mod follow;
pub mod tcpdump;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{
    api::ApiError,
    instances::Instance,
    records::{Record, Records},
};

/// A validated OpsValue.
#[derive(Debug)]
pub enum TaskRequest {
    Tcpdump(String),
    Coredump(String),
}

/// The engines behind CreateInstanceOpsTask.
pub struct Tasks {}

impl Tasks {
    pub fn new() -> Self {
        Self {}
    }

    /// Validate an OpsValue for `ops_type`.
    pub fn parse(&self, ops_type: &str, value: &str) -> Result<TaskRequest, ApiError> {
        match ops_type {
            "tcpdump" => Ok(TaskRequest::Tcpdump(value.to_owned())),
            "coredump" => Ok(TaskRequest::Coredump(value.to_owned())),
            other => Err(ApiError::OpsTypeNotSupport(format!(
                "OpsType `{other}` is not supported"
            ))),
        }
    }

    /// Whether `instance` has what `ops_type` needs, and is running:
    /// a network namespace for tcpdump, a cgroup for coredump.
    pub fn check_instance(&self, ops_type: &str, instance: &Instance) -> Result<(), ApiError> {
        let unsupported = |why: String| Err(ApiError::OpsInstanceNotSupport(why));
        match ops_type {
            "tcpdump" => match &instance.netns {
                None => unsupported(format!(
                    "container group {} has no network namespace",
                    instance.id
                )),
                Some(ns) => match crate::ebpf::netns::Netns::open(ns) {
                    Ok(_) => Ok(()),
                    Err(e) => unsupported(format!(
                        "container group {} is not running: {e}",
                        instance.id
                    )),
                },
            },
            "coredump" => match &instance.cgroup {
                None => unsupported(format!("container group {} has no cgroup", instance.id)),
                Some(cg) => match crate::cgroup::resolve(cg) {
                    Ok(_) => Ok(()),
                    Err(e) => unsupported(format!(
                        "container group {} is not running: {e}",
                        instance.id
                    )),
                },
            },
            _ => Ok(()),
        }
    }

    /// Carry out a validated request for `instance`, keeping its records.
    pub fn apply(
        &self,
        _instance: &Instance,
        _task: TaskRequest,
        _records: &Records,
    ) -> Result<String, ApiError> {
        Err(ApiError::OpsExecuteTaskFail("engine not wired".into()))
    }

    /// Live counters of a running task, if any.
    pub fn progress(&self, _record: &Record) -> Value {
        Value::Null
    }

    /// Stop everything at daemon shutdown: captures finish and are
    /// recorded, core_pattern is given back.
    pub fn shutdown(&self, _records: &Records) {}

    /// The file a running capture writes.
    pub fn live_path(&self, _record: &Record) -> Option<PathBuf> {
        None
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

/// Open a stored artifact for download: `.zst` files are decompressed.
pub fn open_artifact(path: &Path) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    let file = std::fs::File::open(path)?;
    Ok(Box::new(file))
}
