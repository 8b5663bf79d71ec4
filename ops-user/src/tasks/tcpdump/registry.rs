//! One capture per container group at a time.

use std::{collections::HashMap, path::PathBuf, sync::Mutex};

use super::{
    capture::{Capture, CaptureHandle, OnFinish, Progress, Tuning},
    options::CaptureOptions,
    summary::{StopReason, Summary},
};
use crate::{
    api::error::ApiError,
    ebpf::{netns::Netns, tc::AttachMode},
};

/// The running tcpdump tasks of the node, keyed by container group id.
///
/// A second `Enable: true` for a group whose capture still runs, and an
/// `Enable: false` for a group with none running, are refused with
/// `Ops.ExecuteTaskFail` (a request that cannot be carried out in the
/// group's current state; `Ops.IntervalTooShort` would wrongly suggest that
/// retrying later helps without stopping the capture first).
pub struct Tcpdump {
    mode: AttachMode,
    tuning: Tuning,
    captures: Mutex<HashMap<String, CaptureHandle>>,
}

impl Tcpdump {
    pub fn new(mode: AttachMode) -> Self {
        Self::with_tuning(mode, Tuning::default())
    }

    pub fn with_tuning(mode: AttachMode, tuning: Tuning) -> Self {
        Self {
            mode,
            tuning,
            captures: Mutex::new(HashMap::new()),
        }
    }

    /// Start a capture for `group_id`. `on_finish` receives the summary when
    /// it ends, whatever ends it (a limit, `Enable: false`, shutdown, the
    /// group vanishing).
    pub fn start(
        &self,
        group_id: &str,
        netns: Netns,
        options: CaptureOptions,
        out: PathBuf,
        on_finish: Option<OnFinish>,
    ) -> Result<(), ApiError> {
        let mut captures = self.lock();
        if let Some(running) = captures.get(group_id) {
            if !running.is_finished() {
                return Err(ApiError::OpsExecuteTaskFail(format!(
                    "a tcpdump task is already running for container group {group_id} \
                     (writing {}); stop it with {{\"Enable\": false}} first",
                    running.path().display()
                )));
            }
        }
        // A capture that ended by itself has reported through on_finish;
        // its handle is only joined here.
        captures.remove(group_id);
        let handle = Capture::start_with(
            group_id,
            netns,
            options,
            out,
            self.mode,
            self.tuning.clone(),
            on_finish,
        )?;
        captures.insert(group_id.to_owned(), handle);
        Ok(())
    }

    /// Stop the capture of `group_id` (`Enable: false`) and return its
    /// summary once the file is complete.
    pub fn stop(&self, group_id: &str) -> Result<Summary, ApiError> {
        let handle = {
            let mut captures = self.lock();
            match captures.get(group_id) {
                Some(h) if !h.is_finished() => captures.remove(group_id),
                _ => None,
            }
        };
        match handle {
            Some(handle) => Ok(handle.stop(StopReason::Disabled)),
            None => Err(ApiError::OpsExecuteTaskFail(format!(
                "no tcpdump task is running for container group {group_id}"
            ))),
        }
    }

    /// The progress of `group_id`'s capture, if it has one.
    pub fn progress(&self, group_id: &str) -> Option<Progress> {
        self.lock().get(group_id).map(CaptureHandle::progress)
    }

    /// Stop every capture (daemon shutdown); each file is completed.
    pub fn shutdown(&self) -> Vec<(String, Summary)> {
        let handles: Vec<_> = self.lock().drain().collect();
        handles
            .into_iter()
            .map(|(group, h)| (group, h.stop(StopReason::Shutdown)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CaptureHandle>> {
        self.captures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.shutdown();
    }
}
