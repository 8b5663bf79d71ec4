//! The coredump `OpsValue`: `enable` or `disable` (the documented form), or
//! the extension `{"Enable": true, "CorePattern": "/abs/dir/core.%e.%p"}`.

use serde::Deserialize;

use super::{pattern::CORENAME_MAX_SIZE, specifiers, EnableOptions};
use crate::api::error::ApiError;

/// What an `OpsValue` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoredumpSetting {
    Enable(EnableOptions),
    Disable,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Extended {
    #[serde(rename = "Enable")]
    enable: bool,
    #[serde(rename = "CorePattern")]
    core_pattern: Option<String>,
}

pub fn parse_ops_value(value: &str) -> Result<CoredumpSetting, ApiError> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("enable") {
        return Ok(CoredumpSetting::Enable(EnableOptions::default()));
    }
    if value.eq_ignore_ascii_case("disable") {
        return Ok(CoredumpSetting::Disable);
    }
    if !value.starts_with('{') {
        return Err(ApiError::OpsValueInvalid(format!(
            "coredump OpsValue is `enable` or `disable`, not `{value}`"
        )));
    }
    let ext: Extended =
        serde_json::from_str(value).map_err(|e| ApiError::OpsValueInvalid(e.to_string()))?;
    if !ext.enable {
        if ext.core_pattern.is_some() {
            return Err(ApiError::OpsValueInvalid(
                "CorePattern only goes with \"Enable\": true".into(),
            ));
        }
        return Ok(CoredumpSetting::Disable);
    }
    if let Some(p) = &ext.core_pattern {
        check_core_pattern(p)?;
    }
    Ok(CoredumpSetting::Enable(EnableOptions {
        core_pattern: ext.core_pattern,
    }))
}

/// A per-group CorePattern: an absolute file pattern inside the container.
pub fn check_core_pattern(p: &str) -> Result<(), ApiError> {
    if p.starts_with('|') || p.starts_with('@') {
        return Err(ApiError::CoredumpInvalidCorePatternType(format!(
            "CorePattern `{p}` is a pipe or socket; only file patterns are supported"
        )));
    }
    let bad = |why: &str| ApiError::InvalidCorePatternValue(format!("CorePattern `{p}`: {why}"));
    if p.len() >= CORENAME_MAX_SIZE {
        return Err(bad(&format!("longer than {} bytes", CORENAME_MAX_SIZE - 1)));
    }
    if !p.starts_with('/') {
        return Err(bad("not an absolute path"));
    }
    if p.ends_with('/') {
        return Err(bad("names a directory, not a file"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(bad("contains `..`"));
    }
    if p.chars().any(|c| c.is_control()) {
        return Err(bad("contains a control character"));
    }
    specifiers::check(p).map_err(|why| bad(&why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_values() {
        assert_eq!(
            parse_ops_value("enable").unwrap(),
            CoredumpSetting::Enable(EnableOptions::default())
        );
        assert_eq!(
            parse_ops_value("disable").unwrap(),
            CoredumpSetting::Disable
        );
        for bad in [
            "",
            "on",
            "true",
            "{\"Enable\": 1}",
            "{\"Foo\": true, \"Enable\": true}",
        ] {
            assert_eq!(
                parse_ops_value(bad).unwrap_err().code(),
                "Ops.OpsValueInvalid",
                "{bad}"
            );
        }
    }

    #[test]
    fn core_pattern_extension() {
        let v = parse_ops_value(r#"{"Enable": true, "CorePattern": "/data/core.%e.%p"}"#).unwrap();
        assert_eq!(
            v,
            CoredumpSetting::Enable(EnableOptions {
                core_pattern: Some("/data/core.%e.%p".into())
            })
        );
        let code = |p: &str| {
            parse_ops_value(&format!(r#"{{"Enable": true, "CorePattern": "{p}"}}"#))
                .unwrap_err()
                .code()
        };
        assert_eq!(code("|/bin/cat"), "Coredump.InvalidCorePatternType");
        assert_eq!(code("@/run/x.sock"), "Coredump.InvalidCorePatternType");
        for bad in [
            "core.%p",
            "/a/../b",
            "/a/core.%C",
            "/a/",
            &format!("/{}", "x".repeat(200)),
        ] {
            assert_eq!(code(bad), "InvalidCorePatternValue", "{bad}");
        }
    }
}
