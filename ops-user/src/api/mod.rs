//! The Alibaba Cloud RPC API the daemon serves (ECI, version 2018-08-08).

pub mod error;
pub mod protocol;
pub mod signature;

pub use error::ApiError;
