//! The daemon's configuration: an embedded default (`default.toml`), then an
//! optional TOML file, then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

use crate::{ebpf::tc::AttachMode, tasks::coredump::CoredumpSettings};

/// The configuration `ops serve` uses when given nothing else.
pub const DEFAULT_TOML: &str = include_str!("default.toml");

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where records and artifacts live.
    pub data_dir: PathBuf,
    /// TC attach mechanism: auto (TCX, else clsact), tcx or clsact.
    pub tc_attach: AttachMode,
    /// The coredump engine (`[coredump]`, `[coredump.limits]`).
    #[serde(default)]
    pub coredump: CoredumpSettings,
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str(DEFAULT_TOML).expect("the embedded default configuration parses")
    }
}

impl Config {
    /// The default configuration with the keys of `path` laid over it.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML)?;
        let overlay: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        merged.extend(overlay);
        toml::Value::Table(merged)
            .try_into()
            .with_context(|| format!("invalid config {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses() {
        let c = Config::default();
        assert_eq!(c.tc_attach, AttachMode::Auto);
        assert!(c.data_dir.is_absolute());
        assert_eq!(c.coredump, CoredumpSettings::default());
    }

    #[test]
    fn coredump_table_overrides_some_keys_and_rejects_unknown_ones() {
        let dir = std::env::temp_dir().join(format!("ops-config-cd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            "[coredump]
mode = \"pipe\"
[coredump.limits]
rate_burst = 3
",
        )
        .unwrap();
        let c = Config::load(Some(&good)).unwrap();
        assert_eq!(c.coredump.mode, crate::tasks::coredump::ModeChoice::Pipe);
        assert_eq!(c.coredump.limits.rate_burst, 3);
        assert_eq!(c.coredump.limits.max_concurrent, 16);
        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[coredump.limits]
rate_bust = 3
",
        )
        .unwrap();
        let err = format!("{:#}", Config::load(Some(&bad)).unwrap_err());
        assert!(err.contains("rate_bust"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn file_overrides_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("ops-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "tc_attach = \"clsact\"\n").unwrap();
        assert_eq!(
            Config::load(Some(&good)).unwrap().tc_attach,
            AttachMode::Clsact
        );
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "no_such_key = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&bad)).unwrap_err());
        assert!(err.contains("no_such_key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
