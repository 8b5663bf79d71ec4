//! The daemon's configuration: an embedded default (`default.toml`), then an
//! optional TOML file, then command-line flags.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

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
    /// The local API socket (root only).
    pub socket: PathBuf,
    /// TCP address of the signed API; none by default.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `ID:SECRET` AccessKeys accepted on `listen`.
    #[serde(default)]
    pub access_keys: Vec<String>,
    /// The region this node serves.
    pub region: String,
    /// Minimum seconds between two settings of the same group and OpsType.
    pub min_interval: u64,
    /// Seconds a record, and its download URL, lives (ECI: 12 hours).
    pub record_ttl: u64,
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

    /// The AccessKeys as (id, secret), each checked for the `ID:SECRET` form.
    pub fn keys(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.access_keys
            .iter()
            .map(|k| match k.split_once(':') {
                Some((id, secret)) if !id.is_empty() && !secret.is_empty() => {
                    Ok((id.to_owned(), secret.to_owned()))
                }
                _ => anyhow::bail!("access key `{k}` is not of the form ID:SECRET"),
            })
            .collect()
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
        assert!(c.socket.is_absolute());
        assert_eq!(c.region, "cn-hangzhou");
        assert_eq!(c.min_interval, 10);
        assert!(
            c.listen.is_none(),
            "the network API is off unless asked for"
        );
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
        std::fs::write(&good, "tc_attach = \"clsact\"\naccess_keys = [\"a:b\"]\n").unwrap();
        let c = Config::load(Some(&good)).unwrap();
        assert_eq!(c.tc_attach, AttachMode::Clsact);
        assert_eq!(c.keys().unwrap(), vec![("a".to_owned(), "b".to_owned())]);
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "no_such_key = 1\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&bad)).unwrap_err());
        assert!(err.contains("no_such_key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_access_keys_are_refused() {
        let c = Config {
            access_keys: vec!["nocolon".into()],
            ..Config::default()
        };
        assert!(c.keys().is_err());
    }
}
