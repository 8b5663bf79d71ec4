//! Text for people, JSON for scripts.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

impl Output {
    /// Print `value` as JSON, or as `text(value)`.
    pub fn print(self, value: &Value, text: impl FnOnce(&Value) -> String) {
        match self {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
            Output::Text => {
                let s = text(value);
                if !s.is_empty() {
                    println!("{s}");
                }
            }
        }
    }
}

/// A string field, or "-".
pub fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or("-")
}
