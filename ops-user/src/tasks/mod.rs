//! The O&M tasks. Each engine is plain synchronous code; [`Tasks`] is what
//! the API calls, and keeps the records of what the engines do.

pub mod coredump;
pub mod follow;
pub mod tcpdump;

use std::{
    collections::HashMap,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
};

use serde_json::{json, Value};

use self::{
    coredump::{Coredump, CoredumpSetting, CrashRecord},
    tcpdump::{StopReason, Summary, Tcpdump, TcpdumpRequest},
};
use crate::{
    api::ApiError,
    instances::{Instance, Registry},
    records::{OpsStatus, Record, Records},
    store::now_ms,
};

/// A validated OpsValue.
#[derive(Debug)]
pub enum TaskRequest {
    Tcpdump(TcpdumpRequest),
    Coredump(CoredumpSetting),
}

/// The result string ECI returns for a coredump setting.
pub const COREDUMP_RESULT: &str = "Coredump settings has been configured successfully.";

/// The result string for a tcpdump setting.
pub const TCPDUMP_STARTED: &str = "Enable Success";
pub const TCPDUMP_STOPPED: &str = "Disable Success";

/// The engines behind CreateInstanceOpsTask.
pub struct Tasks {
    /// Captures are written under `<data_dir>/tcpdump/<group>/`.
    data_dir: PathBuf,
    tcpdump: Tcpdump,
    /// The Ready record of each group's running capture.
    captures: Arc<Mutex<HashMap<String, String>>>,
    coredump: Mutex<Option<Coredump>>,
    /// Where the coredump engine (and its pipe helper) keep crash records,
    /// one directory per group.
    crash_dir: PathBuf,
    /// Each group's crash directory mtime at its last sync.
    synced: Mutex<HashMap<String, std::time::SystemTime>>,
    /// The Ready arming record of each coredump-enabled group.
    armed: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Tasks {
    pub fn new(data_dir: PathBuf, tcpdump: Tcpdump, coredump: Coredump) -> Self {
        Self {
            data_dir,
            tcpdump,
            captures: Arc::default(),
            crash_dir: coredump.groups_dir(),
            synced: Mutex::default(),
            coredump: Mutex::new(Some(coredump)),
            armed: Mutex::default(),
        }
    }

    /// Validate an OpsValue for `ops_type`.
    pub fn parse(&self, ops_type: &str, value: &str) -> Result<TaskRequest, ApiError> {
        match ops_type {
            "tcpdump" => Ok(TaskRequest::Tcpdump(TcpdumpRequest::parse(value)?)),
            "coredump" => Ok(TaskRequest::Coredump(coredump::parse_ops_value(value)?)),
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
                Some(cg) => {
                    let dir = coredump::cgroup::mount_point()
                        .map(|mount| coredump::cgroup::resolve(&mount, cg));
                    match dir.and_then(|d| coredump::cgroup::id_of(&d)) {
                        Ok(_) => Ok(()),
                        Err(e) => unsupported(format!(
                            "container group {} is not running: cgroup {}: {e}",
                            instance.id,
                            cg.display()
                        )),
                    }
                }
            },
            _ => Ok(()),
        }
    }

    /// Carry out a validated request for `instance`, keeping its records.
    pub fn apply(
        &self,
        instance: &Instance,
        task: TaskRequest,
        records: &Arc<Records>,
    ) -> Result<String, ApiError> {
        match task {
            TaskRequest::Coredump(setting) => self.coredump(instance, setting, records),
            TaskRequest::Tcpdump(request) => self.tcpdump(instance, request, records),
        }
    }

    fn tcpdump(
        &self,
        instance: &Instance,
        request: TcpdumpRequest,
        records: &Arc<Records>,
    ) -> Result<String, ApiError> {
        let options = match request {
            TcpdumpRequest::Stop => {
                // on_finish records the outcome before stop returns.
                self.tcpdump.stop(&instance.id)?;
                return Ok(TCPDUMP_STOPPED.to_owned());
            }
            TcpdumpRequest::Start(options) => options,
        };
        let netns_name = instance.netns.as_deref().ok_or_else(|| {
            ApiError::OpsInstanceNotSupport(format!(
                "container group {} has no network namespace",
                instance.id
            ))
        })?;
        let netns = crate::ebpf::netns::Netns::open(netns_name).map_err(|e| {
            ApiError::OpsInstanceNotSupport(format!(
                "container group {} is not running: {e}",
                instance.id
            ))
        })?;
        let dir = self.data_dir.join("tcpdump").join(&instance.id);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                ApiError::OpsExecuteTaskFail(format!("creating {}: {e}", dir.display()))
            })?;
        let detail = json!({ "Interface": options.interface, "Snaplen": options.snaplen });
        let mut record = records.create(&instance.id, "tcpdump", OpsStatus::Ready, detail)?;
        let out = dir.join(format!("{}.pcapng", record.id));
        record.artifact = Some(out.clone());
        records.finish(
            &record.id,
            OpsStatus::Ready,
            Some(&out),
            record.detail.clone(),
        )?;

        let (on_records, id, group, captures) = (
            records.clone(),
            record.id.clone(),
            instance.id.clone(),
            self.captures.clone(),
        );
        let on_finish = Box::new(move |summary: &Summary| {
            lock(&captures).remove(&group);
            let (status, artifact) = outcome(summary);
            if let Err(e) = on_records.finish(&id, status, artifact, summary_json(summary)) {
                tracing::error!(record = %id, "recording a finished capture: {e}");
            }
        });
        // Registered before the start, so a capture that ends at once
        // still finds its entry to remove.
        lock(&self.captures).insert(instance.id.clone(), record.id.clone());
        if let Err(e) = self
            .tcpdump
            .start(&instance.id, netns, options, out, Some(on_finish))
        {
            // Refused (bad interface, attach failure): the request did not
            // happen, so it leaves no record and no file behind.
            lock(&self.captures).remove(&instance.id);
            records.delete(&record.id)?;
            return Err(e);
        }
        Ok(TCPDUMP_STARTED.to_owned())
    }

    fn with_coredump<T>(
        &self,
        f: impl FnOnce(&Coredump) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        match lock(&self.coredump).as_ref() {
            Some(engine) => f(engine),
            None => Err(ApiError::OpsExecuteTaskFail(
                "the daemon is shutting down".into(),
            )),
        }
    }

    fn coredump(
        &self,
        instance: &Instance,
        setting: CoredumpSetting,
        records: &Records,
    ) -> Result<String, ApiError> {
        let cgroup = instance.cgroup.as_deref().unwrap_or(Path::new("/"));
        match setting {
            CoredumpSetting::Enable(opts) => {
                let detail = json!({ "CorePattern": opts.core_pattern });
                self.with_coredump(|engine| engine.enable(&instance.id, cgroup, opts))?;
                // One arming record per enable; a re-enable closes the last.
                let record = records.create(&instance.id, "coredump", OpsStatus::Ready, detail)?;
                if let Some(old) = lock(&self.armed).insert(instance.id.clone(), record.id) {
                    records.finish(
                        &old,
                        OpsStatus::Closed,
                        None,
                        json!({ "Reason": "enabled again" }),
                    )?;
                }
            }
            CoredumpSetting::Disable => {
                self.with_coredump(|engine| engine.disable(&instance.id))?;
                if let Some(old) = lock(&self.armed).remove(&instance.id) {
                    records.finish(
                        &old,
                        OpsStatus::Closed,
                        None,
                        json!({ "Reason": "disabled" }),
                    )?;
                }
            }
        }
        Ok(COREDUMP_RESULT.to_owned())
    }

    /// Re-arm coredump for the groups whose arming record was Ready when
    /// the daemon stopped. A group that is gone gets its record Failed.
    pub fn rearm(&self, registry: &Registry, records: &Records) -> Result<(), ApiError> {
        for record in records.list(None, Some("coredump"))? {
            if record.status != OpsStatus::Ready || record.detail.get("Crash").is_some() {
                continue;
            }
            let result = registry.find(&record.group_id).and_then(|instance| {
                let cgroup = instance.cgroup.clone().unwrap_or_else(|| "/".into());
                let core_pattern = record.detail["CorePattern"].as_str().map(str::to_owned);
                self.with_coredump(|engine| {
                    engine.enable(
                        &instance.id,
                        &cgroup,
                        coredump::EnableOptions { core_pattern },
                    )
                })
            });
            match result {
                Ok(()) => {
                    lock(&self.armed).insert(record.group_id.clone(), record.id.clone());
                }
                Err(e) => {
                    tracing::warn!(group = %record.group_id, "coredump not re-armed: {e}");
                    records.finish(&record.id, OpsStatus::Failed, None, json!({ "Reason": format!("not re-armed after a restart: {}", e.message()) }))?;
                }
            }
        }
        Ok(())
    }

    /// Bring the engines' own records (a crash is recorded by the pipe
    /// helper even while the daemon is down) into the database, and expire
    /// what is due.
    pub fn maintain(&self, records: &Records, group: Option<&str>) -> Result<(), ApiError> {
        let groups: Vec<String> = match group {
            Some(g) => vec![g.to_owned()],
            None => std::fs::read_dir(&self.crash_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
        };
        for group in groups {
            if crate::instances::validate_id(&group).is_err() {
                continue;
            }
            let dir = self.crash_dir.join(&group);
            // A group's records change only by files created or renamed
            // into its directory, which moves the directory's mtime: skip
            // the ones that have not moved since the last sync.
            let mtime = std::fs::metadata(&dir).and_then(|m| m.modified()).ok();
            if mtime.is_none() || lock(&self.synced).get(&group) == mtime.as_ref() {
                continue;
            }
            for crash in CrashRecord::load_all(&dir) {
                records.upsert(&crash_record(&group, &dir, &crash, records.ttl_ms()))?;
            }
            // File times are coarse (a jiffy): a change in the same tick as
            // this sync would not move the mtime, so only a settled one is
            // remembered.
            if let Some(t) = mtime.filter(|t| t.elapsed().is_ok_and(|e| e.as_secs() >= 1)) {
                lock(&self.synced).insert(group, t);
            }
        }
        let now = now_ms();
        for record in records.due_for_expiry(now)? {
            self.expire(&record, records)?;
        }
        Ok(())
    }

    /// ExpireTime passed while still Ready: disarm for real.
    fn expire(&self, record: &Record, records: &Records) -> Result<(), ApiError> {
        if record.ops_type == "coredump" {
            let armed = lock(&self.armed).get(&record.group_id) == Some(&record.id);
            if armed {
                lock(&self.armed).remove(&record.group_id);
                if let Err(e) = self.with_coredump(|engine| engine.disarm(&record.group_id)) {
                    tracing::warn!(group = %record.group_id, "disarming expired coredump: {e}");
                }
            }
            let triggered = records
                .list(Some(&record.group_id), Some("coredump"))?
                .iter()
                .any(|r| r.detail.get("Crash").is_some() && r.create_ms >= record.create_ms);
            let status = if triggered {
                OpsStatus::Closed
            } else {
                OpsStatus::Expired
            };
            records.finish(&record.id, status, None, json!({ "Reason": "expired" }))?;
        } else {
            records.finish(
                &record.id,
                OpsStatus::Expired,
                record.artifact.as_deref(),
                record.detail.clone(),
            )?;
        }
        Ok(())
    }

    /// Live counters of a running capture, if `record` is one.
    pub fn progress(&self, record: &Record) -> Value {
        if lock(&self.captures).get(&record.group_id) != Some(&record.id) {
            return Value::Null;
        }
        match self.tcpdump.progress(&record.group_id) {
            Some(p) => json!({
                "Captured": p.written,
                "BytesWritten": p.bytes_written,
                "Matched": p.matched,
                "Lost": p.lost,
                "ElapsedMs": p.elapsed.as_millis() as u64,
                "Running": p.running,
            }),
            None => Value::Null,
        }
    }

    /// The file a capture writes (or wrote).
    pub fn live_path(&self, record: &Record) -> Option<PathBuf> {
        (record.ops_type == "tcpdump")
            .then(|| record.artifact.clone())
            .flatten()
    }

    /// Stop everything at daemon shutdown: captures finish and are
    /// recorded, core_pattern is given back. Arming records stay Ready:
    /// the next start re-arms them.
    pub fn shutdown(&self, records: &Records) {
        // Each capture completes its file and records itself (on_finish).
        self.tcpdump.shutdown();
        if let Some(engine) = lock(&self.coredump).take() {
            engine.shutdown();
        }
        if let Err(e) = self.maintain(records, None) {
            tracing::warn!("final record sync: {e}");
        }
    }
}

/// A finished capture's record state: Closed when disabled before
/// anything was written, Failed on an error, Success (with the file)
/// otherwise.
fn outcome(summary: &Summary) -> (OpsStatus, Option<&Path>) {
    match &summary.stop_reason {
        StopReason::Error(_) => (OpsStatus::Failed, None),
        StopReason::Disabled | StopReason::Shutdown if summary.written == 0 => {
            (OpsStatus::Closed, None)
        }
        _ => (OpsStatus::Success, Some(summary.path.as_path())),
    }
}

/// The capture summary as a record's detail.
fn summary_json(s: &Summary) -> Value {
    json!({
        "StopReason": s.stop_reason.to_string(),
        "Seen": s.seen,
        "Matched": s.matched,
        "Captured": s.captured,
        "Lost": s.lost,
        "Truncated": s.truncated,
        "Written": s.written,
        "NotWritten": s.not_written,
        "BytesWritten": s.bytes_written,
        "ElapsedMs": s.elapsed.as_millis() as u64,
    })
}

/// A crash as a record: Success with the core, or Failed saying why not.
fn crash_record(group: &str, dir: &Path, crash: &CrashRecord, ttl_ms: i64) -> Record {
    let create_ms = (crash.time as i64) * 1000;
    let core = crash.core.as_ref();
    let mut detail = serde_json::to_value(crash).unwrap_or_default();
    detail["Crash"] = json!(true);
    if let Some(reason) = &crash.no_core_reason {
        detail["Reason"] = serde_json::to_value(reason).unwrap_or_default();
    }
    Record {
        id: format!("core-{group}-{}", crash.id),
        group_id: group.to_owned(),
        ops_type: "coredump".into(),
        status: if core.is_some() {
            OpsStatus::Success
        } else {
            OpsStatus::Failed
        },
        create_ms,
        expire_ms: create_ms + ttl_ms,
        artifact: core.map(|c| dir.join(&c.file)),
        detail,
    }
}

/// Open a stored artifact for download: `.zst` cores are decompressed as
/// they stream, so users get the core gdb reads.
pub fn open_artifact(path: &Path) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    let file = std::fs::File::open(path)?;
    if path.extension().is_some_and(|e| e == "zst") {
        return Ok(Box::new(zstd::stream::read::Decoder::new(file)?));
    }
    Ok(Box::new(file))
}
