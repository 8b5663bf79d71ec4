//! The RPC envelope: how a request names its action and parameters, and the
//! JSON shapes of answers.
//!
//! The SDKs send `POST /?<params>` with an empty body and the action in
//! `x-acs-action`; older clients put `Action=`/`Version=` in the query, and
//! form-encoded bodies are accepted too.

use serde::Serialize;

use super::ApiError;

pub const VERSION: &str = "2018-08-08";

/// A decoded request.
#[derive(Debug, Clone)]
pub struct RpcRequest {
    pub action: String,
    /// All parameters: query, then form body.
    pub params: Vec<(String, String)>,
}

impl RpcRequest {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A required, non-empty parameter, or `Missing<Name>`.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::MissingParameter(name)),
        }
    }
}

/// Decode `application/x-www-form-urlencoded` pairs (what the SDK's query
/// string is: `+` is a space).
pub fn decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Build the request from its raw parts.
pub fn parse(
    query: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<RpcRequest, ApiError> {
    let mut params = decode_pairs(query.unwrap_or_default());
    let form = headers
        .iter()
        .any(|(n, v)| n == "content-type" && v.starts_with("application/x-www-form-urlencoded"));
    if form {
        params.extend(decode_pairs(&String::from_utf8_lossy(body)));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let action = header("x-acs-action")
        .or_else(|| param("Action"))
        .ok_or(ApiError::MissingParameter("Action"))?;
    let version = header("x-acs-version")
        .or_else(|| param("Version"))
        .ok_or(ApiError::MissingParameter("Version"))?;
    if version != VERSION {
        return Err(ApiError::InvalidParameter(format!(
            "Specified parameter Version `{version}` is not valid; this service speaks {VERSION}."
        )));
    }
    Ok(RpcRequest { action, params })
}

/// `{"RequestId", "HostId", "Code", "Message", "Recommend"}`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    pub request_id: String,
    pub host_id: String,
    pub code: String,
    pub message: String,
    pub recommend: String,
}

impl ErrorBody {
    pub fn new(err: &ApiError, request_id: &str, host_id: &str) -> Self {
        Self {
            request_id: request_id.to_owned(),
            host_id: host_id.to_owned(),
            code: err.code(),
            message: err.message(),
            recommend: format!("ops: see `ops --help`; error code {}", err.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_sdk_style_and_the_query_style() {
        let q = "ContainerGroupId=eci-1&OpsValue=%7B%22Enable%22%3A+true%7D";
        let r = parse(
            Some(q),
            &headers(&[
                ("x-acs-action", "CreateInstanceOpsTask"),
                ("x-acs-version", VERSION),
            ]),
            b"",
        )
        .unwrap();
        assert_eq!(r.action, "CreateInstanceOpsTask");
        assert_eq!(r.get("OpsValue"), Some("{\"Enable\": true}"));
        let r = parse(
            Some("Action=DescribeInstanceOpsRecords&Version=2018-08-08"),
            &[],
            b"",
        )
        .unwrap();
        assert_eq!(r.action, "DescribeInstanceOpsRecords");
    }

    #[test]
    fn missing_or_wrong_envelope_is_a_clear_error() {
        assert_eq!(parse(None, &[], b"").unwrap_err().code(), "MissingAction");
        assert_eq!(
            parse(Some("Action=X"), &[], b"").unwrap_err().code(),
            "MissingVersion"
        );
        assert_eq!(
            parse(Some("Action=X&Version=2014-01-01"), &[], b"")
                .unwrap_err()
                .code(),
            "InvalidParameter"
        );
        let r = parse(Some("Action=X&Version=2018-08-08&A="), &[], b"").unwrap();
        assert_eq!(r.required("A").unwrap_err().code(), "MissingA");
    }
}
