//! The API's error table, as one enum.
//!
//! Each variant is one documented `Code` (CreateInstanceOpsTask's table, the
//! gateway's signature codes, and the generic ones), and knows its HTTP
//! status and message. Where the documentation gives `%s`, the variant
//! carries a message specific to the case; where it gives a fixed text, that
//! text is kept and the specific reason, if any, is appended.

/// An error as the API reports it: `{Code, Message}` with an HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    // --- CreateInstanceOpsTask (all HTTP 400) ---
    /// Same group and coredump state set again within the minimum interval.
    #[error("The time interval since last setting too short, please try again later.")]
    CoredumpRefreshIntervalTooShort,
    #[error("{0}")]
    OpsTypeNotSupport(String),
    #[error("{0}")]
    CoredumpRegionNotSupport(String),
    /// core_pattern could not be written, or someone else rewrote it.
    #[error("Update coredump settings fail, please try again later{}", detail(.0))]
    CorePatternUpdateFail(String),
    #[error("{0}")]
    CoredumpInvalidCorePatternType(String),
    #[error("{0}")]
    InvalidCorePatternValue(String),
    #[error("The specified instanceId does not exist")]
    InvalidInstanceIdNotFound,
    #[error("{0}")]
    OpsInstanceNotSupport(String),
    /// Same group and OpsType set again within the minimum interval.
    #[error("The time interval since last setting too short, please try again later.")]
    OpsIntervalTooShort,
    #[error("{0}")]
    OpsRegionNotSupport(String),
    /// OpsValue is not valid JSON, has unknown fields, or misses `Enable`.
    #[error("Ops value check failed, please confirm by ops type and try again later.{}", detail(.0))]
    OpsValueInvalid(String),
    #[error("{0}")]
    OpsExecuteTaskFail(String),
    /// A field of a tcpdump OpsValue has a bad value; the message names it.
    #[error("{0}")]
    TcpdumpInvalidValue(String),

    // --- Request-level errors ---
    /// A required parameter is absent; the code is `Missing<Name>`.
    #[error("{0} is mandatory for this action.")]
    MissingParameter(&'static str),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("Specified api is not found, please check your url and method.")]
    InvalidActionNotFound,
    #[error("The request processing has failed due to some unknown error.{}", detail(.0))]
    InternalError(String),

    // --- Signature (HTTP 403) ---
    #[error("Specified access key is not found.")]
    InvalidAccessKeyIdNotFound,
    #[error("The request signature does not conform to Aliyun standards. {0}")]
    SignatureDoesNotMatch(String),
    #[error("Specified signature nonce was used already.")]
    SignatureNonceUsed,
    #[error("Specified time stamp or date value is expired.{}", detail(.0))]
    InvalidTimeStampExpired(String),
}

fn detail(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

impl ApiError {
    /// The `Code` field, exactly as documented.
    pub fn code(&self) -> String {
        match self {
            Self::CoredumpRefreshIntervalTooShort => "Coredump.RefrshIntervalTooShort".into(),
            Self::OpsTypeNotSupport(_) => "Ops.TypeNotSupport".into(),
            Self::CoredumpRegionNotSupport(_) => "Coredump.RegionNotSupport".into(),
            Self::CorePatternUpdateFail(_) => "CorePattern.UpdateFail".into(),
            Self::CoredumpInvalidCorePatternType(_) => "Coredump.InvalidCorePatternType".into(),
            Self::InvalidCorePatternValue(_) => "InvalidCorePatternValue".into(),
            Self::InvalidInstanceIdNotFound => "InvalidInstanceId.NotFound".into(),
            Self::OpsInstanceNotSupport(_) => "Ops.InstanceNotSupport".into(),
            Self::OpsIntervalTooShort => "Ops.IntervalTooShort".into(),
            Self::OpsRegionNotSupport(_) => "Ops.RegionNotSupport".into(),
            Self::OpsValueInvalid(_) => "Ops.OpsValueInvalid".into(),
            Self::OpsExecuteTaskFail(_) => "Ops.ExecuteTaskFail".into(),
            Self::TcpdumpInvalidValue(_) => "Tcpdump.InvalidValue".into(),
            Self::MissingParameter(name) => format!("Missing{name}"),
            Self::InvalidParameter(_) => "InvalidParameter".into(),
            Self::InvalidActionNotFound => "InvalidAction.NotFound".into(),
            Self::InternalError(_) => "InternalError".into(),
            Self::InvalidAccessKeyIdNotFound => "InvalidAccessKeyId.NotFound".into(),
            Self::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch".into(),
            Self::SignatureNonceUsed => "SignatureNonceUsed".into(),
            Self::InvalidTimeStampExpired(_) => "InvalidTimeStamp.Expired".into(),
        }
    }

    /// The HTTP status of the error response.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::InvalidAccessKeyIdNotFound
            | Self::SignatureDoesNotMatch(_)
            | Self::SignatureNonceUsed
            | Self::InvalidTimeStampExpired(_) => 403,
            Self::InvalidActionNotFound => 404,
            Self::InternalError(_) => 500,
            _ => 400,
        }
    }

    /// The `Message` field.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Shorthand for a tcpdump field with a bad value.
    pub fn tcpdump_field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::TcpdumpInvalidValue(format!("The value of {field} is invalid: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_documented_table() {
        let cases = [
            (
                ApiError::CoredumpRefreshIntervalTooShort,
                "Coredump.RefrshIntervalTooShort",
                400,
            ),
            (
                ApiError::OpsTypeNotSupport("x".into()),
                "Ops.TypeNotSupport",
                400,
            ),
            (
                ApiError::CorePatternUpdateFail(String::new()),
                "CorePattern.UpdateFail",
                400,
            ),
            (
                ApiError::InvalidInstanceIdNotFound,
                "InvalidInstanceId.NotFound",
                400,
            ),
            (
                ApiError::OpsValueInvalid(String::new()),
                "Ops.OpsValueInvalid",
                400,
            ),
            (
                ApiError::tcpdump_field("SourcePort", "0 is not in 1-65535"),
                "Tcpdump.InvalidValue",
                400,
            ),
            (
                ApiError::MissingParameter("ContainerGroupId"),
                "MissingContainerGroupId",
                400,
            ),
            (ApiError::SignatureNonceUsed, "SignatureNonceUsed", 403),
            (
                ApiError::InvalidTimeStampExpired(String::new()),
                "InvalidTimeStamp.Expired",
                403,
            ),
            (
                ApiError::InvalidActionNotFound,
                "InvalidAction.NotFound",
                404,
            ),
            (ApiError::InternalError(String::new()), "InternalError", 500),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code(), code);
            assert_eq!(err.http_status(), status, "{code}");
            assert!(!err.message().is_empty());
        }
    }

    #[test]
    fn fixed_messages_are_kept_and_details_appended() {
        assert_eq!(
            ApiError::InvalidInstanceIdNotFound.message(),
            "The specified instanceId does not exist"
        );
        assert_eq!(
            ApiError::OpsValueInvalid("missing field `Enable`".into()).message(),
            "Ops value check failed, please confirm by ops type and try again later. (missing field `Enable`)"
        );
        assert!(ApiError::tcpdump_field("SourcePort", "0 is not in 1-65535")
            .message()
            .contains("SourcePort"));
    }
}
