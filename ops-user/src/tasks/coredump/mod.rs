//! coredump task: per-container-group crash dumps, with `core_pattern`
//! owned safely and every abnormal exit recorded.
